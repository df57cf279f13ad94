"""Coder sheets: parsing (frames, seconds, CSV, XLSX, CAS(ME)^2 layout), the ME rule, and every bad input.

Every refusal goes through the CLI: exit code 2, a message naming the row and the fix, no
traceback, and the derivatives file byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from mecg.cli.annotate import MERGE_RULES as CLI_RULES
from mecg.cli.annotate import UNITS as CLI_UNITS
from mecg.cli.main import main
from mecg.interop.coder_sheets import UNITS, CoderSheetError, read_coder_sheet, write_coder_sheet
from mecg.model.agreement import MERGE_RULES
from mecg.session import Annotation, SessionWriter, StreamInfo, derivatives_path, open_session
from mecg.session.coders import coder_sets, me_rule, reference_coder

N, FPS = 600, 30.0  # the test video: 600 frames at 30 fps = 20 s


def write_recording(path: Path) -> Path:
    rng = np.random.default_rng(0)
    with SessionWriter(path, subject_id="P-1") as w:
        cam = w.add_stream(StreamInfo("FaceCamera", "Video", kind="video", nominal_srate_hz=FPS, frame_shape=(8, 8)))
        w.append(cam, rng.integers(0, 256, (N, 8, 8), dtype=np.uint8), np.arange(N) / FPS)
        w.set_annotations([Annotation(30, 33, 40, "ME", "AU4", "fear")], cam)
    return path


@pytest.fixture
def rec(tmp_path: Path) -> Path:
    return write_recording(tmp_path / "S.h5")


def csv_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def xlsx_file(path: Path, rows: list[list[object]], merge: str | None = None) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    if merge:
        ws.merge_cells(merge)
    wb.save(path)
    return path


def parse(path: Path, **kw) -> dict[str, list[Annotation]]:
    return read_coder_sheet(path, n_frames=kw.pop("n_frames", N), fps=kw.pop("fps", FPS), **kw).sets


def test_cli_choices_match_the_library() -> None:
    assert CLI_UNITS == UNITS and CLI_RULES == MERGE_RULES


# -- parsing ------------------------------------------------------------------------------------


def test_frames_csv_with_aliases_extra_known_columns_and_type_rule(tmp_path: Path) -> None:
    sheet = csv_file(
        tmp_path / "a.csv",
        "Subject,Onset Frame,ApexFrame,OFFSET_FRAME,Action Units,Estimated Emotion,Notes,Duration\n"
        "P-1,100,104,110,4+9,disgust,clear,11\n"
        "P-1,200,230,260,AU12,happiness,,61\n"
        "\n"  # a blank row is skipped
        "P-1,300,305,340,,,,\n",
    )
    got = parse(sheet, coder="A")
    assert got == {
        "A": [
            Annotation(100, 104, 110, "ME", "AU4+AU9", "disgust"),  # 10 frames = 0.33 s: ME
            Annotation(200, 230, 260, "MaE", "AU12", "happiness"),  # 2 s, apex after 1 s: MaE
            Annotation(300, 305, 340, "ME"),  # 1.33 s long but apex after 0.17 s: ME by the rise
        ]
    }


def test_seconds_and_milliseconds_columns_become_nearest_frames(tmp_path: Path) -> None:
    sheet = csv_file(
        tmp_path / "s.csv",
        "onset_s,Apex (s),offset time,type\n3.3333,3.4,3.7,\n10.0,11.0,12.5,micro-expression\n",
    )
    res = read_coder_sheet(sheet, n_frames=N, fps=FPS, coder="B")
    # 3.3333 s x 30 = 99.999 -> 100; 3.4 -> 102; 3.7 -> 111; a type given wins over the rule (noted)
    assert res.sets["B"] == [Annotation(100, 102, 111, "ME"), Annotation(300, 330, 375, "ME")]
    assert res.units == {"onset": "s", "apex": "s", "offset": "s"}
    assert any("row 3" in n and "ME rule" in n for n in res.notes)
    ms = csv_file(tmp_path / "ms.csv", "onset_ms,apex_ms,offset_ms\n1000,1100,1300\n")
    assert parse(ms, coder="B") == {"B": [Annotation(30, 33, 39, "ME")]}
    bare = csv_file(tmp_path / "bare.csv", "onset,apex,offset\n1.5,1.6,1.9\n")
    assert parse(bare, coder="B", units="s") == {"B": [Annotation(45, 48, 57, "ME")]}


def test_xlsx_with_title_rows_coder_column_and_numbers_as_cells(tmp_path: Path) -> None:
    sheet = xlsx_file(
        tmp_path / "c.xlsx",
        [
            ["Lab coding, study 3"],  # a title row above the header is skipped
            [],
            ["coder", "onset_frame", "apex_frame", "offset_frame", "type", "aus", "emotion"],
            ["A", 10, 12, 15, "ME", "AU4", "anger"],
            ["B", 11, 12, 16, "ME", "AU4", "anger"],
            ["A", 100.0, 150.0, 200.0, "MaE", "", ""],
        ],
    )
    got = parse(sheet)
    assert got == {
        "A": [Annotation(10, 12, 15, "ME", "AU4", "anger"), Annotation(100, 150, 200, "MaE")],
        "B": [Annotation(11, 12, 16, "ME", "AU4", "anger")],
    }
    assert parse(sheet, coder="B") == {"B": got["B"]}


def test_missing_apex_is_refused_unless_apex_mid(tmp_path: Path) -> None:
    no_col = csv_file(tmp_path / "n.csv", "onset_frame,offset_frame\n10,21\n")
    with pytest.raises(CoderSheetError, match=r"no apex column.*--apex-mid"):
        parse(no_col, coder="A")
    res = read_coder_sheet(no_col, n_frames=N, fps=FPS, coder="A", apex_mid=True)
    assert res.sets == {"A": [Annotation(10, 15, 21, "ME")]} and "middle frame 15" in res.notes[0]
    empty_cell = csv_file(tmp_path / "e.csv", "onset_frame,apex_frame,offset_frame\n10,12,20\n30,,41\n")
    with pytest.raises(CoderSheetError, match=r"row 3: no apex.*--apex-mid"):
        parse(empty_cell, coder="A")
    assert parse(empty_cell, coder="A", apex_mid=True)["A"][1] == Annotation(30, 35, 41, "ME")


def test_casme2_layout_without_header_counts_frames_from_one(tmp_path: Path) -> None:
    # participant, clip, onset, apex, offset, AUs, emotion, type, self-reported emotion (image numbers)
    sheet = xlsx_file(
        tmp_path / "casme2.xlsx",
        [
            [1, "anger1_1", 101, 104, 110, "4+10", "negative", "micro-expression", "anger"],
            [1, "anger1_2", 201, 0, 300, "12", "positive", "macro-expression", "happy"],  # apex 0: not coded
        ],
    )
    with pytest.raises(CoderSheetError, match="row 2: no apex"):
        parse(sheet, coder="A")
    res = read_coder_sheet(sheet, n_frames=N, fps=FPS, coder="A", apex_mid=True)
    assert res.layout == "casme2"
    assert res.sets["A"] == [
        Annotation(100, 103, 109, "ME", "AU4+AU10", "negative"),
        Annotation(200, 249, 299, "MaE", "AU12", "positive"),
    ]


@pytest.mark.parametrize(("suffix", "units"), [(".csv", "frames"), (".xlsx", "frames"), (".csv", "s"), (".xlsx", "s")])
def test_export_import_round_trip(tmp_path: Path, suffix: str, units: str) -> None:
    sets = {
        "A": [Annotation(0, 3, 9, "ME", "AU1+AU2", "surprise"), Annotation(577, 590, 599, "MaE")],
        "B": [Annotation(5, 6, 8, "ME")],
    }
    out = write_coder_sheet(tmp_path / f"x{suffix}", sets, 29.97, units=units)
    assert parse(out, n_frames=N, fps=29.97) == sets
    with pytest.raises(CoderSheetError, match=r"already exists.*--overwrite"):
        write_coder_sheet(out, sets, 29.97)


@pytest.mark.parametrize(
    ("fps", "me_offset", "mae_offset", "rise_apex", "slow_apex"),
    [
        # onset 0. ME if (offset - onset)/fps <= 0.5 s; else ME if (apex - onset)/fps <= 0.25 s
        (30.0, 15, 16, 7, 8),  # 15/30 = 0.5 s; 7/30 = 0.233 s, 8/30 = 0.267 s
        (150.0, 75, 76, 37, 38),  # 75/150 = 0.5 s; 37/150 = 0.247 s, 38/150 = 0.253 s
        (200.0, 100, 101, 50, 51),  # 100/200 = 0.5 s; 50/200 = 0.25 s exactly, 51/200 = 0.255 s
    ],
)
def test_me_rule_at_30_150_and_200_fps(
    tmp_path: Path, fps: float, me_offset: int, mae_offset: int, rise_apex: int, slow_apex: int
) -> None:
    assert me_rule(0, me_offset, me_offset, fps) == "ME"
    assert me_rule(0, slow_apex, mae_offset, fps) == "MaE"
    assert me_rule(0, rise_apex, mae_offset, fps) == "ME"
    assert me_rule(0, slow_apex, 10 * mae_offset, fps) == "MaE"
    sheet = csv_file(
        tmp_path / "r.csv",
        "onset_frame,apex_frame,offset_frame\n"
        f"1000,{1000 + me_offset},{1000 + me_offset}\n"
        f"2000,{2000 + slow_apex},{2000 + mae_offset}\n"
        f"3000,{3000 + rise_apex},{3000 + mae_offset}\n",
    )
    got = parse(sheet, coder="A", n_frames=5000, fps=fps)["A"]
    assert [a.type for a in got] == ["ME", "MaE", "ME"]


# -- refusals through the CLI: exit 2, the row named, nothing written ----------------------------


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BAD_CSV = {
    "outside": ("onset_frame,apex_frame,offset_frame\n10,12,15\n500,550,700\n", r"row 3: offset 700 is after.*599"),
    "one-based": ("onset_frame,apex_frame,offset_frame\n590,595,600\n", r"row 2.*--first-frame 1"),
    "order": ("onset_frame,apex_frame,offset_frame\n10,12,15\n40,30,50\n", r"row 3: .*onset <= apex <= offset"),
    "duplicate": (
        "onset_frame,apex_frame,offset_frame\n10,12,15\n40,45,50\n10,13,15\n",
        r"rows 2 and 4 code the same interval \[10, 15\]",
    ),
    "unknown column": (
        "onset_frame,apex_frame,offset_frame,confidence\n10,12,15,0.9\n",
        r"column D 'confidence' is not a column mecg reads.*Known columns.*onset_s",
    ),
    "fractional frames": (
        "onset_frame,apex_frame,offset_frame\n1.25,1.4,1.7\n",
        r"row 2: onset 1.25 is not a whole frame number.*onset_s",
    ),
    "seconds as frames": (
        "onset,apex,offset\n1,1,2\n4,4,5\n9,10,11\n",
        r"look like times in seconds.*onset_s.*--units s.*--units frames",
    ),
    "seconds too late": ("onset_s,apex_s,offset_s\n100,101,102\n", r"row 2: onset 100 s \(frame 3000\) is after"),
    "missing apex": ("onset_frame,apex_frame,offset_frame\n10,12,15\n20,,30\n", r"row 3: no apex.*--apex-mid"),
    "missing offset": ("onset_frame,apex_frame,offset_frame\n10,12,\n", r"row 2: no offset"),
    "not a number": ("onset_frame,apex_frame,offset_frame\n10,x,15\n", r"row 2: apex 'x' is not a number"),
    "bad type": ("onset_frame,apex_frame,offset_frame,type\n10,12,15,blink\n", r"row 2: type 'blink' is neither"),
    "empty": ("", r"is empty"),
    "header only": ("onset_frame,apex_frame,offset_frame\n", r"no annotation rows.*--allow-empty"),
    "no header": ("a,b,c\nx,y,z\n", r"no header row naming onset and offset"),
    "two onsets": ("onset,onset_s,offset\n1,2,3\n", r"column B 'onset_s' gives the onset a second time"),
    "unnamed column": (
        "onset_frame,apex_frame,offset_frame,\n10,12,15,oops\n",
        r"column D has no name.*'oops' in row 2",
    ),
    "empty coder cell": (
        "coder,onset_frame,apex_frame,offset_frame\nA,10,12,15\n,20,22,25\n",
        r"row 3: the coder cell",
    ),
    "bad coder in column": ("coder,onset_frame,apex_frame,offset_frame\nA B,10,12,15\n", r"row 2: coder id 'A B'"),
}


@pytest.fixture
def rec_with_set(rec: Path, tmp_path: Path) -> Path:
    """The recording with one coder set already stored: the derivatives file exists and must stay as it is."""
    good = csv_file(tmp_path / "good.csv", "onset_frame,apex_frame,offset_frame\n10,12,15\n")
    assert main(["annotate", str(rec), "import", str(good), "--coder", "A"]) == 0
    return rec


@pytest.fixture(scope="module")
def refusing_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One recording with coder A's set, shared by the refusal tests below: each checks (``refuse``) that its
    command left the derivatives file byte for byte as it was, so the next one meets the same file."""
    d = tmp_path_factory.mktemp("refusals")
    rec = write_recording(d / "S.h5")
    good = csv_file(d / "good.csv", "onset_frame,apex_frame,offset_frame\n10,12,15\n")
    assert main(["annotate", str(rec), "import", str(good), "--coder", "A"]) == 0
    return rec


def refuse(argv: list[str], rec: Path, capsys: pytest.CaptureFixture, match: str) -> str:
    d = derivatives_path(rec)
    before = digest(d) if d.exists() else None
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("mecg: error: ")
    assert re.search(match, err), err
    assert (digest(d) if d.exists() else None) == before
    return err


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_bad_csv_is_refused_naming_the_row_and_nothing_is_written(
    case: str, refusing_rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    text, match = BAD_CSV[case]
    sheet = csv_file(tmp_path / "bad.csv", text)
    args = [] if case.startswith(("empty coder", "bad coder")) else ["--coder", "B"]
    refuse(["annotate", str(refusing_rec), "import", str(sheet), *args], refusing_rec, capsys, match)


def test_merged_header_cells_are_refused(refusing_rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sheet = xlsx_file(
        tmp_path / "m.xlsx",
        [["Frames", None, None, "type"], ["onset_frame", "apex_frame", "offset_frame", "type"], [10, 12, 15, "ME"]],
        merge="A1:C1",
    )
    refuse(
        ["annotate", str(refusing_rec), "import", str(sheet), "--coder", "B"],
        refusing_rec,
        capsys,
        r"merged cells \(A1:C1\); unmerge them",
    )
    one_row = xlsx_file(tmp_path / "m2.xlsx", [["onset frame", None, "offset_frame"], [10, 12, 15]], merge="A1:B1")
    refuse(["annotate", str(refusing_rec), "import", str(one_row), "--coder", "B"], refusing_rec, capsys, "merged")


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["import", "{good}"], r"no coder column; say whose annotations these are: --coder ID"),
        (["import", "{good}", "--coder", "A"], r"already holds coder A's annotations; pass --replace"),
        (["import", "{good}", "--coder", "a b"], r"coder id 'a b' is not valid"),
        (["import", "{good}", "--coder", "recording"], r"recording's own set"),
        (["import", "{good}", "--coder", "B", "--video", "ECG"], r"'ECG' is not a video stream"),
        (["import", "{dir}/missing.csv", "--coder", "B"], r"does not exist"),
        (["import", "{dir}/old.xls", "--coder", "B"], r"old Excel .xls file"),
        (["reference", "Z"], r"has no coder 'Z'; its coders are: recording, A"),
        (["export", "{dir}/out.csv", "--coder", "Z"], r"has no coder 'Z'"),
        (["agree", "--coders", "A", "Z"], r"has no coder 'Z'"),
        (["agree", "--coders", "A", "A"], r"names A twice"),
        (["merge", "--coders", "A", "Z", "--into", "M"], r"has no coder 'Z'"),
        (["merge", "--coders", "A", "recording", "--into", "A"], r"coder A exists already; pass --replace"),
        (["merge", "--coders", "A", "recording", "--into", "recording"], r"read-only"),
        (["delete", "recording"], r"read-only"),
        (["delete", "Z"], r"has no coder 'Z'"),
    ],
)
def test_bad_commands_are_refused_and_write_nothing(
    argv: list[str], match: str, refusing_rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good = csv_file(tmp_path / "good.csv", "onset_frame,apex_frame,offset_frame\n10,12,15\n")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    argv = [a.format(good=good, dir=tmp_path) for a in argv]
    refuse(["annotate", str(refusing_rec), *argv], refusing_rec, capsys, match)
    assert not (tmp_path / "out.csv").exists()


def test_deleting_the_reference_is_refused(rec_with_set: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["annotate", str(rec_with_set), "reference", "A"]) == 0
    refuse(["annotate", str(rec_with_set), "delete", "A"], rec_with_set, capsys, r"is the reference set")


def test_cli_workflow_import_reference_list_export(rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = csv_file(tmp_path / "a.csv", "onset_frame,apex_frame,offset_frame,aus\n10,12,15,4\n100,130,160,12\n")
    b = xlsx_file(tmp_path / "b.xlsx", [["onset_s", "apex_s", "offset_s"], [0.4, 0.4, 0.5]])
    assert main(["annotate", str(rec), "import", str(a), "--coder", "A", "--reference"]) == 0
    assert main(["annotate", str(rec), "import", str(b), "--coder", "B"]) == 0
    with open_session(rec) as s:
        assert reference_coder(s) == "A"
        assert s.annotations == [Annotation(10, 12, 15, "ME", "AU4"), Annotation(100, 130, 160, "MaE", "AU12")]
        assert coder_sets(s)["B"] == [Annotation(12, 12, 15, "ME")]
    capsys.readouterr()
    assert main(["annotate", str(rec), "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(r["coder"], r["me"], r["mae"], r["reference"]) for r in listing["coders"]] == [
        ("recording", 1, 0, False),
        ("A", 1, 1, True),
        ("B", 1, 0, False),
    ]
    assert main(["annotate", str(rec), "export", str(tmp_path / "ref.csv")]) == 0  # the reference by default
    assert (tmp_path / "ref.csv").read_text().splitlines() == [
        "onset_frame,apex_frame,offset_frame,type,aus,emotion",
        "10,12,15,ME,AU4,",
        "100,130,160,MaE,AU12,",
    ]
    assert main(["annotate", str(rec), "export", str(tmp_path / "all.xlsx"), "--all"]) == 0
    assert parse(tmp_path / "all.xlsx", coder="B") == {"B": [Annotation(12, 12, 15, "ME")]}
    with pytest.raises(CoderSheetError, match="row 2: coder id 'recording' is reserved"):
        parse(tmp_path / "all.xlsx")  # every set, the recording's first: importing it back needs a new name
