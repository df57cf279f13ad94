"""Coder sets in the derivatives file: kept apart, one reference that Session.annotations returns."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mecg.session import Annotation, SessionError, SessionWriter, StreamInfo, derivatives_path, open_session
from mecg.session.coders import (
    RECORDING,
    coder_set,
    coder_sets,
    coder_source,
    delete_coder_set,
    reference_coder,
    set_reference,
    write_coder_set,
    write_coder_sets,
)


def write_recording(path: Path, annotated: bool = True) -> Path:
    """A small recording: 40 frames of video at 30 fps, 1 s of ECG, one ME if ``annotated``."""
    rng = np.random.default_rng(0)
    with SessionWriter(path, subject_id="P-1") as w:
        cam = w.add_stream(StreamInfo("cam", "Video", kind="video", nominal_srate_hz=30.0, frame_shape=(8, 8)))
        ecg = w.add_stream(StreamInfo("ecg", "ECG", nominal_srate_hz=1000.0, channel_labels=["ECG"]))
        w.append(cam, rng.integers(0, 256, (40, 8, 8), dtype=np.uint8), np.arange(40) / 30)
        w.append(ecg, rng.normal(0, 1, (1000, 1)), np.arange(1000) / 1000)
        if annotated:
            w.set_annotations([Annotation(2, 3, 5, "ME", "AU4")], cam)
    return path


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


A = [Annotation(10, 12, 14, "ME", "AU12", "happiness"), Annotation(20, 25, 35, "MaE")]
B = [Annotation(11, 12, 15, "ME")]


def test_sets_are_kept_apart_and_the_reference_is_what_sessions_read(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "S.h5")
    before = digest(rec)
    with open_session(rec, writable=True) as s:
        assert coder_sets(s) == {RECORDING: [Annotation(2, 3, 5, "ME", "AU4")]}
        assert reference_coder(s) == RECORDING
        write_coder_set(s, "A", A, "cam", source="a.csv")
        write_coder_set(s, "B", B, "cam")
        assert list(coder_sets(s)) == [RECORDING, "A", "B"]
        assert coder_sets(s)["A"] == sorted(A, key=lambda a: a.onset_frame)
        assert reference_coder(s) == RECORDING  # importing does not change the reference
        set_reference(s, "B")
        assert reference_coder(s) == "B"
        assert s.annotations == B
    with open_session(rec, writable=True) as s:  # persists; replacing the reference's set updates /annotations
        assert s.annotations == B and reference_coder(s) == "B"
        write_coder_set(s, "B", A, "cam")
        assert s.annotations == A and reference_coder(s) == "B"
        with pytest.raises(SessionError, match="reference"):
            delete_coder_set(s, "B")
        delete_coder_set(s, "A")
        assert list(coder_sets(s)) == [RECORDING, "B"]
        set_reference(s, RECORDING)
        assert reference_coder(s) == RECORDING and s.annotations == [Annotation(2, 3, 5, "ME", "AU4")]
    assert digest(rec) == before  # the recording itself is never written


def test_unannotated_recording_has_no_sets_and_no_reference(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "S.h5", annotated=False)
    with open_session(rec, writable=True) as s:
        assert coder_sets(s) == {} and reference_coder(s) is None
        write_coder_set(s, "A", [], "cam")
        assert coder_sets(s) == {"A": []} and reference_coder(s) is None


def test_annotations_written_without_a_coder_have_no_reference(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "S.h5")
    with open_session(rec, writable=True) as s:
        write_coder_set(s, "A", A, "cam")
        set_reference(s, "A")
        s.write_annotations(B, "cam")  # someone replaced /annotations directly: A is no longer what is read
        assert reference_coder(s) is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: write_coder_set(s, "bad id", A, "cam"), "not valid"),
        (lambda s: write_coder_set(s, "x" * 65, A, "cam"), "not valid"),
        (lambda s: write_coder_set(s, RECORDING, A, "cam"), "read-only"),
        (lambda s: write_coder_set(s, "A", A, "ecg"), "not a video stream"),
        (lambda s: write_coder_set(s, "A", [Annotation(30, 35, 40, "MaE")], "cam"), "last frame \\(39\\)"),
        (lambda s: set_reference(s, "Z"), "no coder 'Z'.*recording"),
        (lambda s: delete_coder_set(s, "Z"), "no coder 'Z'"),
        (lambda s: coder_set(s, "Z"), "no coder 'Z'"),
    ],
)
def test_bad_calls_raise_and_write_nothing(tmp_path: Path, call, match: str) -> None:
    rec = write_recording(tmp_path / "S.h5")
    with open_session(rec, writable=True) as s:
        with pytest.raises(SessionError, match=match):
            call(s)
    assert not derivatives_path(rec).exists()


def test_read_only_session_refuses(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "S.h5")
    with open_session(rec) as s, pytest.raises(SessionError, match="writable=True"):
        write_coder_set(s, "A", A, "cam")


def test_several_sets_and_the_reference_in_one_update_or_none(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "S.h5")
    with open_session(rec, writable=True) as s:
        with pytest.raises(SessionError, match="last frame"):  # B is bad: A is not stored either
            write_coder_sets(s, {"A": A, "B": [Annotation(0, 1, 40, "MaE")]}, "cam", reference="A")
        assert not derivatives_path(rec).exists()
        write_coder_sets(s, {"A": A, "B": B}, "cam", reference="B", source="sheet.xlsx")
        assert reference_coder(s) == "B" and s.annotations == B
        assert coder_source(s, "A") == "sheet.xlsx" and coder_source(s, RECORDING) == "(the recording)"


def test_annotations_written_beside_the_recording_are_its_set_and_survive_a_new_reference(tmp_path: Path) -> None:
    # `mecg record --simulate` closes the recording, then writes the participant's expressions with
    # Session.write_annotations (no coder): they are the set "recording", kept when A becomes the reference.
    rec = write_recording(tmp_path / "S.h5", annotated=False)
    truth = [Annotation(5, 6, 8, "ME", "AU4"), Annotation(20, 30, 39, "MaE")]
    with open_session(rec, writable=True) as s:
        s.write_annotations(truth, "cam")
    with open_session(rec, writable=True) as s:
        assert coder_sets(s) == {RECORDING: truth} and reference_coder(s) == RECORDING
        write_coder_sets(s, {"A": A}, "cam", reference="A")
        assert s.annotations == A and reference_coder(s) == "A"
        assert coder_sets(s) == {RECORDING: truth, "A": A}
        with pytest.raises(SessionError, match="read-only"):
            delete_coder_set(s, RECORDING)
        set_reference(s, RECORDING)
        assert s.annotations == truth and reference_coder(s) == RECORDING
        assert list(coder_sets(s)) == [RECORDING, "A"]


def test_unnamed_annotations_beside_an_annotated_recording_are_kept_too(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "S.h5")  # has its own table
    with open_session(rec, writable=True) as s:
        s.write_annotations(B, "cam")  # written without a coder: no coder set is the reference
        assert reference_coder(s) is None
        write_coder_sets(s, {"A": A}, "cam", reference="A")
        assert coder_sets(s) == {RECORDING: [Annotation(2, 3, 5, "ME", "AU4")], "A": A, "unnamed": B}
