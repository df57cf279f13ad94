"""Public dataset adapters on small trees built in the distributed CAS(ME)^2 and SAMM-LV layouts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from mecg.cli.main import main
from mecg.interop.datasets import DatasetError, import_casme2, import_samm_lv
from mecg.model.evaluate import read_truth
from mecg.session import open_session, validate_session

H, W = 24, 32


def _frames(folder: Path, names: list[str], *, colour: bool, seed: int = 0, grey3: bool = False) -> None:
    """Noise frames; ``grey3`` writes grey content as three equal channels."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in names:
        img = rng.integers(0, 256, (H, W, 3) if colour else (H, W), dtype=np.uint8)
        assert cv2.imwrite(str(folder / name), np.repeat(img[:, :, None], 3, axis=2) if grey3 else img)


# -- CAS(ME)^2: rawpic/sNN/NN_CODEname/img<N>.jpg + code workbook (no header) + naming sheets ---

CASME_CODES = [  # participant, clip, onset, apex, offset, AUs, emotion, type, self-report
    [1, "disgust1_1", 5, 8, 12, "4+9", "negative", "micro-expression", "disgust"],
    [1, "disgust1_2", 20, 0, 30, "12", "positive", "macro-expression", "happy"],  # no apex
    [1, "anger1_1", 3, 6, 0, "4", "negative", "macro-expression", "anger"],  # no offset
    [1, "disgust1_3", 36, 38, 45, "L2", "others", "macro-expression", ""],  # ends after the last image
    [2, "disgust1_1", 10, 12, 15, "1+2", "surprise", "micro-expression", "surprise"],
    [2, "anger1_1", 4, 5, 9, "4", "negative", "micro-expression", "anger"],  # s16 has no 0401 video
]
RULE1 = [[15, "s15", 1], [16, "s16", 2]]
RULE2 = [["0101", "disgust1"], ["0401", "anger1"]]


def _casme_tree(root: Path, *, fmt: str = "xlsx") -> Path:
    pics = root / "rawpic"
    _frames(pics / "s15" / "15_0101disgustingteeth", [f"img{i}.jpg" for i in range(1, 41)], colour=True)
    _frames(pics / "s15" / "15_0401girlcrashing", [f"img{i}.jpg" for i in range(1, 31)], colour=True, seed=1)
    _frames(pics / "s16" / "16_0101disgustingteeth", [f"img{i:03d}.jpg" for i in range(1, 26)], colour=True, seed=2)
    if fmt == "xlsx":
        wb = openpyxl.Workbook()
        wb.active.title = "CASFEcode_final"
        for r in CASME_CODES:
            wb.active.append(r)
        for title, rows in (("naming rule1", RULE1), ("naming rule2", RULE2)):
            ws = wb.create_sheet(title)
            for r in rows:
                ws.append(r)
        wb.save(root / "CAS(ME)^2code_final(Updated).xlsx")
    else:
        labels = root / "labels"
        labels.mkdir()
        for name, rows in (("CASFEcode_final", CASME_CODES), ("naming_rule1", RULE1), ("naming_rule2", RULE2)):
            with (labels / f"{name}.csv").open("w", newline="") as fh:
                csv.writer(fh).writerows(rows)
    return root


def _ann(path: Path) -> list[tuple[int, int, int, str, str, str]]:
    with open_session(path) as s:
        return [(a.onset_frame, a.apex_frame, a.offset_frame, a.type, a.aus, a.emotion) for a in s.annotations]


def test_casme2_xlsx(tmp_path: Path) -> None:
    root = _casme_tree(tmp_path / "CAS(ME)^2")
    out = tmp_path / "out"
    rep = import_casme2(root, out)
    assert sorted(s["file"] for s in rep.sessions) == [
        "casme2_s15_0101.h5",
        "casme2_s15_0401.h5",
        "casme2_s16_0101.h5",
    ]
    for f, n in (("casme2_s15_0101.h5", 40), ("casme2_s15_0401.h5", 30), ("casme2_s16_0101.h5", 25)):
        with validate_session(out / f) as s:
            cam = s.stream(kind="video")
            assert cam.sample_count == n and cam.frames(0, 1).shape == (1, H, W, 3)
            assert cam.info.nominal_srate_hz == 30.0
            np.testing.assert_allclose(cam.timestamps, np.arange(n) / 30.0)
            assert s.subject_id.startswith("casme2-s1") and "no ECG" in s.notes
            assert [st.info.kind for st in s.streams.values()] == ["video"]
    # image numbers (1-based) -> 0-based indices; missing apex -> middle; missing offset -> mirror
    assert _ann(out / "casme2_s15_0101.h5") == [
        (4, 7, 11, "ME", "AU4+AU9", "negative"),
        (19, 24, 29, "MaE", "AU12", "positive"),
        (35, 37, 39, "MaE", "L2", "others"),  # offset 45 clamped to the last image (40)
    ]
    assert _ann(out / "casme2_s15_0401.h5") == [(2, 5, 8, "MaE", "AU4", "negative")]
    assert _ann(out / "casme2_s16_0101.h5") == [(9, 11, 14, "ME", "AU1+AU2", "surprise")]  # img001 naming
    assert len(rep.missing_videos) == 1 and "s16 anger1_1" in rep.missing_videos[0]
    assert any("no apex" in p for p in rep.problems) and any("clamped" in p for p in rep.problems)
    manifest = json.loads((out / "import_casme2.json").read_text())
    assert manifest["ecg"] == "none" and len(manifest["sessions"]) == 3


def test_casme2_csv_export_matches_xlsx(tmp_path: Path) -> None:
    a = _casme_tree(tmp_path / "a")
    b = _casme_tree(tmp_path / "b", fmt="csv")
    import_casme2(a, tmp_path / "oa", max_frames=32)
    import_casme2(b, tmp_path / "ob", annotations=b / "labels" / "CASFEcode_final.csv", max_frames=32)
    for f in ("casme2_s15_0101.h5", "casme2_s15_0401.h5", "casme2_s16_0101.h5"):
        assert _ann(tmp_path / "oa" / f) == _ann(tmp_path / "ob" / f)
    assert len(_ann(tmp_path / "oa" / "casme2_s15_0101.h5")) == 2  # the row ending at frame 39 > 31 is dropped


def test_casme2_strict_missing_video_and_errors(tmp_path: Path) -> None:
    root = _casme_tree(tmp_path / "c")
    with pytest.raises(DatasetError, match=r"name videos that are not in .*s16 anger1_1"):
        import_casme2(root, tmp_path / "o", strict=True)
    with pytest.raises(DatasetError, match="does not exist"):
        import_casme2(tmp_path / "nowhere", tmp_path / "o")
    with pytest.raises(DatasetError, match="no video named 99_0101"):
        import_casme2(root, tmp_path / "o", videos=["99_0101"])
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(DatasetError, match="unknown layout"):
        import_casme2(bare, tmp_path / "o")
    # ROOT may be the rawpic folder itself, or hold rawpic/rawpic as some mirrors unpack it
    import_casme2(root / "rawpic", tmp_path / "o1", videos=["s15_0401"])
    assert _ann(tmp_path / "o1" / "casme2_s15_0401.h5") == [(2, 5, 8, "MaE", "AU4", "negative")]
    (root / "rawpic").rename(root / "inner")
    (root / "rawpic").mkdir()
    (root / "inner").rename(root / "rawpic" / "rawpic")
    import_casme2(root, tmp_path / "o2", videos=["15_0401girlcrashing"], missing_offset="apex")
    assert _ann(tmp_path / "o2" / "casme2_s15_0401.h5") == [(2, 5, 5, "MaE", "AU4", "negative")]
    (root / "CAS(ME)^2code_final(Updated).xlsx").unlink()
    with pytest.raises(DatasetError, match="no annotation file found"):
        import_casme2(root, tmp_path / "o")


def test_unreadable_image(tmp_path: Path) -> None:
    root = _casme_tree(tmp_path / "c")
    (root / "rawpic" / "s15" / "15_0401girlcrashing" / "img7.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"cannot read image .*img7\.jpg"):
        import_casme2(root, tmp_path / "o", videos=["s15_0401"])
    assert not (tmp_path / "o" / "casme2_s15_0401.h5").exists()  # no half-written session left


# -- SAMM-LV: SAMM_longvideos/SSS_V/SSS_V_NNNN.jpg + release workbook with title rows -----------

SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
               "Action Units", "Notes"]  # fmt: skip
SAMM_ROWS = [
    ["006", "006_1_1", 1, 10, 14, 20, 11, "Micro - 1/2", "R12", ""],
    ["006", "006_1_2", 1, 30, -1, 50, 21, "Macro", "4+7", "apex not coded"],
    ["007", "007_3_1", 3, 5, 8, -1, -1, "Macro", "12", ""],
    ["011", "011_2_1", 2, 5, 6, 9, 5, "Micro - 1/2", "1", ""],  # no such video folder
]


def _samm_tree(root: Path, *, header_row: int = 10) -> Path:
    pics = root / "SAMM_longvideos"
    _frames(pics / "006_1", [f"006_1_{i:04d}.jpg" for i in range(1, 61)], colour=False)
    _frames(pics / "007_3", [f"007_3_{i:04d}.jpg" for i in range(1, 21)], colour=False, seed=3, grey3=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "FACS_Movement_Only"
    ws.append(["SAMM Long Videos - FACS coding of movements"])
    for _ in range(header_row - 2):
        ws.append([])
    ws.append(SAMM_HEADER)
    for r in SAMM_ROWS:
        ws.append(r)
    wb.save(root / "SAMM_LongVideos_V3_Release.xlsx")
    return root


def test_samm_lv(tmp_path: Path) -> None:
    root = _samm_tree(tmp_path / "SAMMLV")
    out = tmp_path / "out"
    rep = import_samm_lv(root, out)
    assert [s["file"] for s in rep.sessions] == ["sammlv_006_1.h5", "sammlv_007_3.h5"]
    with validate_session(out / "sammlv_006_1.h5") as s:
        cam = s.stream(kind="video")
        assert cam.sample_count == 60 and cam.frames(0, 2).shape == (2, H, W)  # grey as the images are
        assert cam.info.nominal_srate_hz == 200.0 and cam.timestamps[1] == pytest.approx(0.005)
        assert s.subject_id == "sammlv-006"
    assert _ann(out / "sammlv_006_1.h5") == [(9, 13, 19, "ME", "R12", ""), (29, 39, 49, "MaE", "AU4+AU7", "")]
    assert _ann(out / "sammlv_007_3.h5") == [(4, 7, 10, "MaE", "AU12", "")]  # offset -1: 8 + (8 - 5) = 11
    with open_session(out / "sammlv_007_3.h5") as s:
        assert s.stream(kind="video").frames(0, 1).shape == (1, H, W)  # 3 equal channels stored as grey
    assert len(rep.missing_videos) == 1 and "011_2_1" in rep.missing_videos[0]


def test_samm_filters_resize_and_csv_header(tmp_path: Path) -> None:
    root = _samm_tree(tmp_path / "s", header_row=3)
    rep = import_samm_lv(root, tmp_path / "o", videos=["006_1"], max_frames=25, resize=(20, 16), color="rgb")
    assert [s["file"] for s in rep.sessions] == ["sammlv_006_1.h5"]
    with open_session(tmp_path / "o" / "sammlv_006_1.h5") as s:
        assert s.stream(kind="video").frames(0, 1).shape == (1, 16, 20, 3)
    assert _ann(tmp_path / "o" / "sammlv_006_1.h5") == [(9, 13, 19, "ME", "R12", "")]
    assert any("--max-frames" in p for p in rep.problems)
    # a CSV export of the sheet, given explicitly, with the SAMM_longvideos folder as ROOT
    ann = tmp_path / "samm.csv"
    with ann.open("w", newline="") as fh:
        csv.writer(fh).writerows([["exported"], [], SAMM_HEADER, *SAMM_ROWS])
    import_samm_lv(root / "SAMM_longvideos", tmp_path / "o2", annotations=ann)
    assert _ann(tmp_path / "o2" / "sammlv_007_3.h5") == [(4, 7, 10, "MaE", "AU12", "")]


# -- CLI: import, refuse to overwrite, then evaluate the imported truth -------------------------


def test_cli_import_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _casme_tree(tmp_path / "c")
    out = tmp_path / "sessions"
    assert main(["import-dataset", "casme2", str(root), str(out), "--max-frames", "35"]) == 0
    text = capsys.readouterr()
    assert "wrote 3 sessions" in text.out and "missing video" in text.err
    assert main(["import-dataset", "casme2", str(root), str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["import-dataset", "samm-lv", str(tmp_path / "none"), str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err

    truth = read_truth(out)
    assert {t.session for t in truth} == {"casme2_s15_0101", "casme2_s15_0401", "casme2_s16_0101"}
    pred = tmp_path / "pred.csv"
    with pred.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["session", "onset", "offset", "score", "type"])
        for t in truth:
            w.writerow([t.session, t.onset, t.offset, 1.0, t.type])
        w.writerow(["casme2_s15_0101", 0, 2, 0.5, "ME"])  # one false positive
    assert main(["eval", "--pred", str(pred), "--truth", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["me"] == {**res["me"], "tp": 2, "fp": 1, "fn": 0}
    assert res["mae"]["tp"] == 2 and res["mae"]["f1"] == 1.0


def test_spot_runs_on_an_imported_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A synthetic face video, exported as a CAS(ME)^2 tree, imported, spotted and evaluated."""
    assert main(["synth", str(tmp_path / "syn"), "--duration", "20", "--fps", "30", "--size", "160x120",
                 "--seed", "3", "--workers", "1"]) == 0  # fmt: skip
    with open_session(next((tmp_path / "syn").glob("*.h5"))) as s:
        frames, truth = s.stream(kind="video").frames(), s.annotations
    root = tmp_path / "c"
    _frames(root / "rawpic" / "s15" / "15_0101disgustingteeth", [], colour=False)
    for i, fr in enumerate(frames, 1):
        cv2.imwrite(str(root / "rawpic" / "s15" / "15_0101disgustingteeth" / f"img{i}.jpg"), fr)
    wb = openpyxl.Workbook()
    for k, a in enumerate(truth, 1):
        kind = "micro-expression" if a.type == "ME" else "macro-expression"
        wb.active.append([1, f"disgust1_{k}", a.onset_frame + 1, a.apex_frame + 1, a.offset_frame + 1, "", "", kind])
    wb.create_sheet("naming rule1").append(RULE1[0])
    wb.create_sheet("naming rule2").append(RULE2[0])
    wb.save(root / "CAS(ME)^2code_final.xlsx")
    out = tmp_path / "out"
    assert main(["import-dataset", "casme2", str(root), str(out)]) == 0
    assert [a[:4] for a in _ann(out / "casme2_s15_0101.h5")] == [
        (a.onset_frame, a.apex_frame, a.offset_frame, a.type) for a in truth
    ]
    spots = tmp_path / "spots.csv"
    assert main(["spot", str(out), "--out", str(spots), "--workers", "1"]) == 0
    assert main(["eval", "--pred", str(spots), "--truth", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["overall"]["tp"] + res["overall"]["fn"] == len(truth)
