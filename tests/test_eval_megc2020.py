"""`mecg eval --protocol`: the MEGC2020 baseline's published table reproduced from its public files,
and the evaluator's edge cases (IoU exactly 0.5, kept_by_ccf cells, malformed rows, notices)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mecg.cli.main import main
from mecg.model.evaluate import EvalError, Interval, evaluate, evaluate_spots, iou_megc2020, read_predictions

DATA = Path(__file__).parent / "data" / "megc2020"


def _to_csv():  # tests/data/megc2020/to_csv.py, the converter a lab would write
    spec = importlib.util.spec_from_file_location("megc2020_to_csv", DATA / "to_csv.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _eval_json(capsys: pytest.CaptureFixture, pred: Path, truth: Path, *extra: str) -> tuple[dict, str]:
    """``mecg eval --json``'s object and its stderr."""
    assert main(["eval", "--pred", str(pred), "--truth", str(truth), "--json", *extra]) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


# The baseline's README table (p = 0.01): (TP, FP, FN, precision, recall, F1).
PUBLISHED = {
    "cas": {
        "mae": (109, 1414, 191, 0.0716, 0.3633, 0.1196),
        "me": (21, 5014, 36, 0.0042, 0.3684, 0.0082),
        "overall": (130, 6428, 227, 0.0198, 0.3641, 0.0376),
    },
    "samm": {
        "mae": (22, 334, 321, 0.0618, 0.0641, 0.0629),
        "me": (29, 1407, 130, 0.0202, 0.1824, 0.0364),
        "overall": (51, 1741, 451, 0.0285, 0.1016, 0.0445),
    },
}


@pytest.mark.parametrize("name", ["cas", "samm"])
def test_published_megc2020_table_reproduced(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth, pred = _to_csv().convert(name, tmp_path)
    res, _ = _eval_json(capsys, pred, truth, "--protocol", "megc2020")
    for kind, (tp, fp, fn, p, r, f1) in PUBLISHED[name].items():
        assert res[kind] == {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f1}, kind


def test_published_file_matches_the_table() -> None:
    # the counts above are the ones in the baseline's own results file (predict / true_predict / labels)
    text = (DATA / "MDMD_results" / "eval_res_txt" / "MEGC2020_results.txt").read_text()
    assert "macro-expression:  predict: 1523    true_predict: 109     labels: 300" in text
    assert "micro-expression:   predict: 1436    true_predict: 29      labels: 159" in text


def test_one_to_one_differs_where_one_prediction_finds_two(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth, pred = _to_csv().convert("cas", tmp_path)
    res, err = _eval_json(capsys, pred, truth)  # the default protocol
    assert res["mae"] == {"tp": 104, "fp": 1419, "fn": 196, "precision": 0.0683, "recall": 0.3467, "f1": 0.1141}
    assert res["me"]["tp"] == 21  # no ME pair overlaps: both protocols agree
    assert "3 session(s) with no ground truth (s15_0508, s19_0502, s23_0503)" in err


# -- the two protocols on hand-made cases -----------------------------------------------------------------
def _iv(on: int, off: int, kind: str = "MaE", score: float = 1.0, s: str = "a") -> Interval:
    return Interval(s, on, off, kind, score)


def test_one_prediction_two_overlapping_truths() -> None:
    # [10, 29] vs [10, 24]: 15/20; vs [12, 29]: 18/20: both >= 0.5
    preds, truth = [_iv(10, 29)], [_iv(10, 24), _iv(12, 29)]
    one = evaluate(preds, truth)["mae"]
    megc = evaluate(preds, truth, "megc2020")["mae"]
    assert (one.tp, one.fp, one.fn) == (1, 0, 1)
    assert (megc.tp, megc.fp, megc.fn) == (2, -1, 0)  # FP = predictions - found, as the baseline counts
    assert megc.precision == 2.0


def test_megc2020_duplicates_and_one_frame_intervals() -> None:
    # two predictions of one expression: one found, FP = 2 - 1 under both protocols
    for protocol in ("one-to-one", "megc2020"):
        c = evaluate([_iv(10, 20), _iv(11, 21)], [_iv(10, 20)], protocol)["mae"]
        assert (c.tp, c.fp, c.fn) == (1, 1, 0)
    # a one-frame interval: IoU 1 one-to-one, 0 for the baseline (offset not after onset)
    assert evaluate([_iv(5, 5)], [_iv(5, 5)])["mae"].tp == 1
    assert evaluate([_iv(5, 5)], [_iv(5, 5)], "megc2020")["mae"].tp == 0
    assert iou_megc2020(_iv(0, 9), _iv(10, 19)) == 0.0  # adjacent: nothing shared
    with pytest.raises(EvalError, match="unknown protocol"):
        evaluate_spots([], [], protocol="megc2021")


@pytest.mark.parametrize("protocol", ["one-to-one", "megc2020"])
def test_iou_exactly_half_counts_on_the_cli(protocol: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth = tmp_path / "t.csv"
    truth.write_text("session,onset,offset,type\na,0,9,ME\na,100,109,ME\n")
    pred = tmp_path / "p.csv"
    # [0, 19] vs [0, 9]: 10 of 20 inclusive frames = 0.5 (counts); [100, 120] vs [100, 109]: 10/21 (does not)
    pred.write_text("session,onset,offset,score,type\na,0,19,0.9,ME\na,100,120,0.8,ME\n")
    res, _ = _eval_json(capsys, pred, truth, "--protocol", protocol)
    assert (res["me"]["tp"], res["me"]["fp"], res["me"]["fn"]) == (1, 1, 1)


# -- kept_by_ccf and malformed rows: refused with the line, never dropped ---------------------------------
def test_blank_kept_by_ccf_is_refused_with_line_and_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth = tmp_path / "t.csv"
    truth.write_text("session,onset,offset,type\na,10,20,ME\n")
    pred = tmp_path / "p.csv"
    pred.write_text("session,onset,offset,score,type,kept_by_ccf\na,10,20,0.9,ME,true\na,50,60,0.5,ME,\n")
    assert main(["eval", "--pred", str(pred), "--truth", str(truth)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "kept_by_ccf" in err and "write true" in err and "Traceback" not in err
    pred.write_text("session,onset,offset,score,type,kept_by_ccf\na,10,20,0.9,ME,maybe\n")
    with pytest.raises(EvalError, match="line 2: kept_by_ccf is 'maybe'"):
        read_predictions(pred)


def test_kept_by_ccf_values_and_rejected_rows_still_checked(tmp_path: Path) -> None:
    pred = tmp_path / "p.csv"
    pred.write_text(
        "session,onset,offset,score,type,kept_by_ccf\n"
        "a,10,20,0.9,ME,True\na,30,40,0.9,ME,1\na,50,60,0.9,ME,yes\na,70,80,0.9,ME,FALSE\na,90,99,0.9,ME,0\n"
    )
    assert [p.onset for p in read_predictions(pred)] == [10, 30, 50]
    pred.write_text("session,onset,offset,score,type,kept_by_ccf\na,10,x,0.9,ME,false\n")
    with pytest.raises(EvalError, match="line 2: onset/offset must be integers"):
        read_predictions(pred)  # a rejected row is still a row: malformed is refused, not skipped


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,10,20,0.9,ME,true,extra", "line 2: more cells than the header"),
        ("a,10,20,nan,ME,true", "line 2: score is nan"),
        (",10,20,0.9,ME,true", "line 2: the session cell is blank"),
    ],
)
def test_malformed_rows_are_refused(row: str, message: str, tmp_path: Path) -> None:
    pred = tmp_path / "p.csv"
    pred.write_text("session,onset,offset,score,type,kept_by_ccf\n" + row + "\n")
    with pytest.raises(EvalError, match=message):
        read_predictions(pred)


def test_notices_for_stray_sessions_and_one_frame_intervals(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth = tmp_path / "t.csv"
    truth.write_text("session,onset,offset,type\na,10,20,ME\n")
    pred = tmp_path / "p.csv"
    pred.write_text("session,onset,offset,score,type\na,10,20,0.9,ME\nb,10,20,0.9,ME\na,40,40,0.5,ME\n")
    assert main(["eval", "--pred", str(pred), "--truth", str(truth), "--protocol", "megc2020"]) == 0
    out, err = capsys.readouterr()
    assert "protocol megc2020" in out
    assert "1 prediction(s) from 1 session(s) with no ground truth (b)" in err
    assert "1 prediction(s) and 0 ground truth interval(s) are one frame long" in err


def test_a_spreadsheet_csv_with_byte_order_mark_reads(tmp_path: Path) -> None:
    pred = tmp_path / "p.csv"
    pred.write_bytes("\ufeffsession,onset,offset,score,type\na,10,20,0.9,ME\n".encode())  # as Excel saves
    assert [(p.session, p.onset) for p in read_predictions(pred)] == [("a", 10)]
