"""Inter-coder agreement and merging on hand-made cases whose answers are worked out in the comments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mecg.cli.main import main
from mecg.model.agreement import agreement, cohen_kappa, merge
from mecg.session import Annotation, SessionWriter, StreamInfo, open_session
from mecg.session.coders import coder_set, reference_coder, write_coder_set

# Coder A and coder B on a 120-frame video at 30 fps.
A = [
    Annotation(10, 14, 19, "ME", "AU4", "anger"),
    Annotation(40, 50, 59, "MaE", "AU12", "happiness"),
    Annotation(80, 82, 85, "ME", "AU1"),
]
B = [
    Annotation(11, 16, 20, "ME", "AU4+AU7", "anger"),
    Annotation(42, 47, 61, "MaE", "AU6+AU12", "surprise"),
    Annotation(100, 101, 105, "ME"),
]


def test_kappa_of_two_overlapping_intervals_by_hand() -> None:
    # 10 frames; A marks 0-3, B marks 2-5:  A = 1111000000, B = 0011110000.
    # They agree on frames 2, 3 (both 1) and 6-9 (both 0): p_o = 6/10 = 0.6.
    # p_A1 = p_B1 = 0.4, so p_e = 0.4*0.4 + 0.6*0.6 = 0.52 and kappa = (0.6 - 0.52) / 0.48 = 1/6.
    res = agreement([Annotation(0, 1, 3, "ME")], [Annotation(2, 3, 5, "ME")], 10, 30.0)
    assert res.kappa["expression"] == pytest.approx(1 / 6)
    assert res.kappa["me"] == pytest.approx(1 / 6)
    assert res.kappa["mae"] is None  # neither coder marked a MaE: p_e = 1, kappa undefined
    # IoU of [0, 3] and [2, 5] = 2 / 6 < 0.5: no match, F1 0
    assert (res.any_type.tp, res.any_type.fp, res.any_type.fn, res.any_type.f1) == (0, 1, 1, 0.0)
    assert res.apex_summary()["pairs"] == 0 and res.type_agreement is None


def test_cohen_kappa_extremes() -> None:
    x = np.array([1, 1, 0, 0], dtype=bool)
    assert cohen_kappa(x, x) == 1.0
    assert cohen_kappa(x, ~x) == -1.0  # p_o = 0, p_e = 0.5: (0 - 0.5) / 0.5
    assert cohen_kappa(np.zeros(4, bool), np.zeros(4, bool)) is None


def test_agreement_figures_by_hand() -> None:
    res = agreement(A, B, 120, 30.0, ("A", "B"))
    # Matching: [10,19] vs [11,20]: overlap 11-19 = 9 frames, union 10-20 = 11 -> IoU 0.818 (pair);
    # [40,59] vs [42,61]: overlap 18, union 22 -> 0.818 (pair); [80,85] vs [100,105]: 0.
    # 2 matched, 1 only A, 1 only B: P = R = F1 = 2/3, within types as well (1 ME pair, 1 MaE pair).
    c = res.any_type
    assert (c.tp, c.fp, c.fn) == (2, 1, 1) and c.f1 == pytest.approx(2 / 3)
    assert (res.intervals["me"].tp, res.intervals["me"].fp, res.intervals["me"].fn) == (1, 1, 1)
    assert (res.intervals["mae"].tp, res.intervals["mae"].fp, res.intervals["mae"].fn) == (1, 0, 0)
    assert res.intervals["overall"].f1 == pytest.approx(2 / 3)
    assert res.type_agreement == 1.0
    # Expression frames: A 10+20+6 = 36, B 36, both 9+18 = 27, neither 120 - 27 - 9 - 9 = 75.
    # p_o = (27 + 75) / 120 = 0.85; p_A1 = p_B1 = 0.3, p_e = 0.09 + 0.49 = 0.58; kappa = 0.27 / 0.42 = 9/14.
    assert res.kappa["expression"] == pytest.approx(9 / 14)
    # ME frames: A 10+6 = 16, B 10+6 = 16, both 9, neither 120 - 9 - 7 - 7 = 97: p_o = 106/120 = 53/60;
    # p = 16/120 = 2/15, p_e = 4/225 + 169/225 = 173/225; kappa = (53/60 - 173/225) / (52/225) = 103/208.
    assert res.kappa["me"] == pytest.approx(103 / 208)
    # MaE frames: 20 and 20, both 18, neither 98: p_o = 116/120 = 29/30; p = 1/6, p_e = 26/36;
    # kappa = (29/30 - 13/18) / (10/36) = (22/90) * (36/10) = 0.88.
    assert res.kappa["mae"] == pytest.approx(0.88)
    # Apex distances of the pairs: |14 - 16| = 2, |50 - 47| = 3 -> mean 2.5, median 2.5, max 3 frames;
    # at 30 fps one frame is 33.33 ms: 83.333, 83.333, 100 ms.
    ap = res.apex_summary()
    assert ap == {
        "pairs": 2,
        "mean_frames": 2.5,
        "mean_ms": 83.333,
        "median_frames": 2.5,
        "median_ms": 83.333,
        "max_frames": 3.0,
        "max_ms": 100.0,
    }


def test_merge_rules_by_hand() -> None:
    # Pair 1: onset (10+11)/2 = 10.5 -> 11 (half up), offset (19+20)/2 -> 20, apex (14+16)/2 = 15;
    #   (20 - 11) / 30 = 0.3 s <= 0.5 s: ME. AUs united, emotion shared.
    # Pair 2: onset 41, offset 60, apex (50+47)/2 = 48.5 -> 49; 19 frames = 0.63 s long and the apex
    #   8 frames = 0.27 s after onset: MaE. Emotions differ: both kept.
    pair1 = Annotation(11, 15, 20, "ME", "AU4+AU7", "anger")
    pair2 = Annotation(41, 49, 60, "MaE", "AU12+AU6", "happiness/surprise")
    res = merge(A, B, 30.0, "consensus")
    assert res.annotations == [pair1, pair2]
    assert (res.matched, res.kept_a, res.kept_b, res.dropped) == (2, 0, 0, 2)
    res = merge(A, B, 30.0, "mean")
    assert res.annotations == [pair1, pair2, A[2], B[2]]
    assert (res.kept_a, res.kept_b, res.dropped) == (1, 1, 0)
    # union: [10, 20] apex 15 (ME); [40, 61] apex 49: rise 9 frames = 0.3 s, 0.7 s long: MaE
    res = merge(A, B, 30.0, "union")
    assert res.annotations == [
        Annotation(10, 15, 20, "ME", "AU4+AU7", "anger"),
        Annotation(40, 49, 61, "MaE", "AU12+AU6", "happiness/surprise"),
        A[2],
        B[2],
    ]
    with pytest.raises(ValueError, match="merge rule"):
        merge(A, B, 30.0, "vote")


def test_agree_and_merge_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rec = tmp_path / "S.h5"
    with SessionWriter(rec, subject_id="P-1") as w:
        cam = w.add_stream(StreamInfo("cam", "Video", kind="video", nominal_srate_hz=30.0, frame_shape=(8, 8)))
        w.append(cam, np.zeros((120, 8, 8), dtype=np.uint8), np.arange(120) / 30)
    with open_session(rec, writable=True) as s:
        write_coder_set(s, "A", A, "cam")
        write_coder_set(s, "B", B, "cam")
    capsys.readouterr()
    assert main(["annotate", str(rec), "agree", "--coders", "A", "B", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["any_type"] == {
        "matched": 2,
        "only_a": 1,
        "only_b": 1,
        "precision": 0.6667,
        "recall": 0.6667,
        "f1": 0.6667,
    }
    assert out["kappa"] == {"expression": round(9 / 14, 4), "me": round(103 / 208, 4), "mae": 0.88}
    assert out["apex"]["max_ms"] == 100.0
    assert main(["annotate", str(rec), "agree", "--coders", "A", "B"]) == 0
    text = capsys.readouterr().out
    assert "kappa: expression 0.643, ME 0.495, MaE 0.880" in text
    assert main(["annotate", str(rec), "merge", "--coders", "A", "B", "--into", "AB", "--reference"]) == 0
    with open_session(rec) as s:
        assert reference_coder(s) == "AB"
        assert s.annotations == merge(A, B, 30.0).annotations == coder_set(s, "AB")
    assert main(["annotate", str(rec), "merge", "--coders", "A", "B", "--into", "AB", "--rule", "union"]) == 2
    assert (
        main(["annotate", str(rec), "merge", "--coders", "A", "B", "--into", "AB", "--rule", "union", "--replace"]) == 0
    )
    with open_session(rec) as s:  # replacing the reference set replaces what train/eval read, too
        assert s.annotations == merge(A, B, 30.0, "union").annotations and reference_coder(s) == "AB"
