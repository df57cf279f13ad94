"""The loop closes: sessions annotated through imported coder sheets train (`mecg train`) and evaluate (`mecg eval`).

The imported sheets hold the MEs only (in seconds, without a type column: the ME rule types them),
while the recordings' own tables also hold MaEs; `mecg eval` counting no MaE shows that train and
eval read the reference set, not the recording's table.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import openpyxl
import pytest

from mecg.cli.main import main
from mecg.session import open_session
from mecg.session.coders import RECORDING, coder_set, reference_coder


@pytest.mark.slow
def test_sheet_import_train_spot_eval(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    argv = ["synth", str(data), "--subjects", "2", "--duration", "12", "--fps", "15", "--size", "64x48"]
    assert main([*argv, "--seed", "3", "--me-per-min", "15", "--mae-per-min", "10", "--workers", "1"]) == 0
    sessions = sorted(data.glob("*.h5"))
    assert len(sessions) == 2
    digest = {s: hashlib.sha256(s.read_bytes()).hexdigest() for s in sessions}
    n_me = 0
    for s in sessions:
        exported = tmp_path / f"{s.stem}.csv"
        assert main(["annotate", str(s), "export", str(exported), "--coder", RECORDING, "--units", "s"]) == 0
        with exported.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["type"] == "ME"]
        with open_session(s) as sess:
            assert any(a.type == "MaE" for a in sess.annotations)  # the recording's own table has MaEs
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(["Onset (s)", "Apex (s)", "Offset (s)", "Action Units", "Emotion"])
        for r in rows:
            ws.append([float(r["onset_s"]), float(r["apex_s"]), float(r["offset_s"]), r["aus"], r["emotion"]])
        sheet = tmp_path / f"{s.stem}_coder_A.xlsx"
        wb.save(sheet)
        assert main(["annotate", str(s), "import", str(sheet), "--coder", "A", "--reference"]) == 0
        with open_session(s) as sess:
            assert reference_coder(sess) == "A"
            assert [a.type for a in sess.annotations] == ["ME"] * len(rows)
            assert sess.annotations == coder_set(sess, "A")
        n_me += len(rows)
    assert n_me >= 2
    model, spots = tmp_path / "m.pt", tmp_path / "spots.csv"
    train = ["train", str(data), "--out", str(model), "--epochs", "1", "--pretrain-epochs", "0", "--workers", "1"]
    assert main(train) == 0
    assert main(["spot", str(data), "--model", str(model), "--out", str(spots), "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["eval", "--pred", str(spots), "--truth", str(data), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["me"]["tp"] + res["me"]["fn"] == n_me  # the imported MEs are the ground truth
    assert res["mae"]["tp"] + res["mae"]["fn"] == 0  # the recordings' MaEs are not: the reference set is read
    with open_session(sessions[0]) as sess:  # training stored its sync beside the sets and kept the reference
        assert reference_coder(sess) == "A" and len(sess.sync_group.attrs) > 0
    # import, sync, train, spot and eval wrote beside the recordings, never into them
    assert {s: hashlib.sha256(s.read_bytes()).hexdigest() for s in sessions} == digest
