"""One rule for the ECG of a session (mecg.session.ecg_channel): ECG streams, ECG inside EXG/EEG streams, choices.

The end-to-end part turns a synthetic trial's ECG stream into an 8-channel EXG stream (as OpenBCI GUI
or a BrainFlow app sends it: the ECG is one labelled channel among EEG channels) and checks that
sync and the model's ECG features find the same R-peaks in it as in the original.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mecg.cli.main import main
from mecg.model.ecg_features import ensure_synced
from mecg.session import SessionWriter, StreamInfo, open_session
from mecg.session.ecg_channel import (
    EcgChannel,
    EcgChannelError,
    auto_column,
    ecg_stream,
    find_ecg,
    pick_ecg,
    stream_ecg_column,
)
from mecg.sync import SyncError, Timeline, synchronize, write_result
from mecg.synth import Subject, Trial, TrialConfig, write_trial

EXG_LABELS = ["Fp1", "Fp2", "C3", "ECG", "TRIG", "STROBE", "O1", "O2"]


def sig(name: str, type_: str, labels: list[str], types: list[str] | None = None) -> StreamInfo:
    return StreamInfo(
        name=name,
        type=type_,
        nominal_srate_hz=250.0,
        channel_labels=labels,
        channel_units=["uV"] * len(labels),
        channel_types=types if types is not None else [""] * len(labels),
    )


def test_automatic_rule_on_single_streams() -> None:
    assert auto_column(sig("ECG", "ECG", ["ECG", "TRIG"], ["ECG", "TRIG"])) == 0
    assert auto_column(sig("amp", "ECG", ["A", "B"])) == 0  # an ECG stream without labels: column 0, as before
    assert auto_column(sig("obci", "EXG", EXG_LABELS)) == 3
    assert auto_column(sig("obci", "EEG", ["Fp1", "ekg", "O1"])) == 1  # EKG, any case
    assert auto_column(sig("bs", "EEG", ["A1", "A2", "EX1"], ["EEG", "EEG", "ECG"])) == 2  # by channel type
    assert auto_column(sig("leads", "ECG", ["ECG1", "ECG2", "ECG"])) == 2  # exactly "ECG" wins over leads
    assert auto_column(sig("eeg", "EEG", ["Fp1", "Fp2"])) is None
    video = StreamInfo(name="cam", type="Video", kind="video", channel_format="int8", frame_shape=(2, 2))
    assert auto_column(video) is None


def test_pick_choice_and_clear_errors() -> None:
    streams = {"ECG": sig("ECG", "ECG", ["ECG", "TRIG"]), "OpenBCI": sig("OpenBCI", "EXG", EXG_LABELS)}
    with pytest.raises(EcgChannelError, match=r"several streams carry ECG \(ECG:ECG, OpenBCI:ECG\).*--ecg-channel"):
        pick_ecg(streams)
    assert pick_ecg(streams, "OpenBCI:ECG") == EcgChannel("OpenBCI", 3, "ECG")
    assert pick_ecg(streams, "exg:3") == EcgChannel("OpenBCI", 3, "ECG")  # stream by type, column by index
    assert pick_ecg(streams, "ECG:0") == EcgChannel("ECG", 0, "ECG")
    assert pick_ecg(streams, "fp2") == EcgChannel("OpenBCI", 1, "Fp2")  # a unique label needs no stream
    with pytest.raises(EcgChannelError, match=r"'ECG' matches several channels \(ECG:0, OpenBCI:3\)"):
        pick_ecg(streams, "ECG")
    with pytest.raises(EcgChannelError, match=r"matches no channel.*OpenBCI \(type EXG: 0 Fp1, 1 Fp2"):
        pick_ecg(streams, "Cz")
    with pytest.raises(EcgChannelError, match="no signal stream has column 9"):
        pick_ecg(streams, "9")
    assert pick_ecg({"eeg": sig("eeg", "EEG", ["Fp1"])}) is None
    one = {"OpenBCI": sig("OpenBCI", "EXG", EXG_LABELS)}
    assert pick_ecg(one) == pick_ecg(one, "3") == EcgChannel("OpenBCI", 3, "ECG")
    # one stream seen alone (the live heart rate): the choice names it or not
    assert stream_ecg_column(streams["OpenBCI"], "OpenBCI:O1", "OpenBCI") == 6
    assert stream_ecg_column(streams["ECG"], "OpenBCI:O1", "ECG") is None
    assert stream_ecg_column(streams["ECG"]) == 0


# -- sessions ------------------------------------------------------------------------------------
# 30 fps: which column holds the ECG does not depend on the frame rate, and the strobe is ``ok`` there
# (uncertainty 0.077 ms for subject seeds 1-3, as at 150 fps); 20 s keep > 15 R-peaks (25-27).
BASE = TrialConfig(
    duration_s=20.0, fps=30.0, width=96, height=72, trigger_gap_s=(1.0, 3.0), me_per_min=0, mae_per_min=0
)


def as_exg(src: Path, dst: Path, *, keep_ecg_stream: bool = False, choice: str = "") -> Path:
    """``src`` with its ECG amplifier stream re-sent as an 8-channel EXG stream (ECG in column 3)."""
    with open_session(src) as s, SessionWriter(dst, s.subject_id, s.notes) as w:
        for st in s.streams.values():
            info, data = st.info, st.data[()]
            if info.type == "ECG":
                if keep_ecg_stream:
                    k = w.add_stream(info)
                    w.append(k, data, st.timestamps)
                    w.append_clock_offsets(k, st.clock_offsets)
                rng = np.random.default_rng(0)
                cols = {"ECG": data[:, 0], "TRIG": data[:, 1], "STROBE": data[:, 2]}
                data = np.column_stack([cols.get(lab, rng.normal(0, 0.01, len(data))) for lab in EXG_LABELS]).astype(
                    np.float32
                )
                info = replace(
                    info,
                    name="OpenBCI",
                    type="EXG",
                    channel_labels=list(EXG_LABELS),
                    channel_units=["mV"] * 4 + ["bool"] * 2 + ["mV"] * 2,
                    channel_types=["EXG"] * 8,
                )
            k = w.add_stream(info)
            w.append(k, data, st.timestamps)
            w.append_clock_offsets(k, st.clock_offsets)
        if choice:
            w.set_ecg_channel(choice)
        w.set_annotations(s.annotations, "FaceCamera")
    return dst


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trial(Trial(Subject.random("S01", 1), 0, BASE), tmp_path_factory.mktemp("ecg") / "orig.h5")


def test_exg_stream_is_synced_and_gives_the_same_ecg_features(trial: Path, tmp_path: Path) -> None:
    from mecg.model.ecg_features import ecg_features

    exg = as_exg(trial, tmp_path / "exg.h5")
    with open_session(exg) as s:
        stream, ch = ecg_stream(s)
        assert (stream.key, ch.column, ch.label) == ("OpenBCI", 3, "ECG")
    for path in (trial, exg):
        with open_session(path, writable=True) as s:
            res = synchronize(s, "auto")
            write_result(s, res)
        assert res.mode == "strobe" and res.verdict == "ok"
    with open_session(exg) as s:
        tl = Timeline(s)
        assert tl.ecg.key == "OpenBCI" and tl.ecg_column == 3
        assert s.sync_group.attrs["ecg_channel"] == "ECG"
    a, b = ecg_features(str(trial)), ecg_features(str(exg))
    assert a.peaks_s.size > 15 and np.array_equal(a.peaks_s, b.peaks_s)
    assert np.allclose(a.hr_bpm, b.hr_bpm, equal_nan=True)


def test_ambiguous_session_asks_and_a_stored_or_given_choice_decides(
    trial: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    both = as_exg(trial, tmp_path / "both.h5", keep_ecg_stream=True)
    with open_session(both) as s:
        with pytest.raises(EcgChannelError, match="several streams carry ECG"):
            find_ecg(s)
    assert main(["sync", str(both), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "several streams carry ECG (ECG:ECG, OpenBCI:ECG)" in err and "Traceback" not in err
    assert main(["sync", str(both), "--json", "--ecg-channel", "OpenBCI:ECG"]) == 0
    assert '"ecg_stream": "OpenBCI"' in capsys.readouterr().out
    # synced: the model goes on with sync's choice; another explicit choice is refused with the fix
    ensure_synced(both, print)
    ensure_synced(both, print, "OpenBCI:3")
    with pytest.raises(SyncError, match=r"synced with the ECG in OpenBCI column 3, not ECG:ECG.*--ecg-channel ECG:0"):
        ensure_synced(both, print, "ECG:0")
    stored = as_exg(trial, tmp_path / "stored.h5", keep_ecg_stream=True, choice="OpenBCI:3")
    with open_session(stored) as s:
        assert find_ecg(s) == EcgChannel("OpenBCI", 3, "ECG")  # the recording's choice
        assert find_ecg(s, "ECG:ECG") == EcgChannel("ECG", 0, "ECG")  # a given one overrides it
    assert main(["sync", str(stored), "--ecg-channel", "Cz"]) == 2
    assert "'Cz' matches no channel" in capsys.readouterr().err
