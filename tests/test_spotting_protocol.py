"""The spotting protocol, pinned: spotting never reads annotations or ground truth; in LOSO the test
subject never enters training, normalisation, early stopping, threshold or eta choice; and the CCF
as the paper states it (HRS at the apex, trial mean per stimulus segment, a threshold per eta).

(tests/test_protocol.py is the serial protocol's; this file is the evaluation protocol's.)
"""

from __future__ import annotations

import contextlib
import shutil
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import mecg.model.pipeline as pipeline
import mecg.model.train as train_mod
from mecg.cli.main import main
from mecg.errors import MecgError
from mecg.model.checkpoint import ModelError, check_spot
from mecg.model.cmclnet import CMCLConfig
from mecg.model.ecg_features import StimulusSegment, stimulus_segments
from mecg.model.heart_rate import hr_slope, mean_hr_slope
from mecg.model.pipeline import ccf_rule, ccf_threshold, fit, load_sessions, loso, save
from mecg.model.spots import Spot
from mecg.model.spotter import (
    LEGACY_RULE,
    MAX_CANDIDATES_PER_MIN,
    CcfRule,
    apply_ccf,
    choose_threshold,
    parse_hrs_rule,
    trial_reference,
)
from mecg.model.spotting import spot_session
from mecg.model.train import TrainConfig
from mecg.model.windows import SessionData, WindowParams
from mecg.session import open_session
from mecg.synth import Subject, Trial, TrialConfig, write_trial

#: 15 fps: the protocol is about what reaches training and spotting; half the frames of 30 fps halve the front end.
CFG = TrialConfig(duration_s=12.0, fps=15.0, width=96, height=72, me_per_min=15.0, mae_per_min=5.0)
TC = TrainConfig(epochs=1, pretrain_epochs=0, batch_size=32, seed=0, log=False, max_negatives_per_session=40)
WINDOW = WindowParams(time_steps=8)
#: A narrow one-layer network: the protocol is about what reaches training and spotting, not about accuracy.
NET = CMCLConfig(time_steps=8, dim=32, heads=2, layers=1)


@pytest.fixture(scope="module")
def three_subjects(tmp_path_factory: pytest.TempPathFactory) -> list[SessionData]:
    """Three subjects, one short session each: the smallest set LOSO with a validation subject runs on."""
    tmp = tmp_path_factory.mktemp("protocol")
    paths = [
        write_trial(Trial(Subject.random(f"S0{s + 1}", 40 + s), 0, CFG), tmp / f"sub-{s + 1:02d}.h5") for s in range(3)
    ]
    return load_sessions(paths, WINDOW, log=lambda m: None, workers=1)


@pytest.fixture(scope="module")
def model_file(three_subjects: list[SessionData], tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, spot = fit(three_subjects, NET, TC, log=lambda m: None)
    ck = tmp_path_factory.mktemp("model") / "m.pt"
    save(ck, model, WINDOW, three_subjects[0].frontend_params, spot, TC, three_subjects)
    return ck


class _NoTruthTrial(Trial):
    """The same recording without annotations and without generator truth."""

    def annotations(self) -> list:
        return []

    def ground_truth(self) -> tuple[dict, dict]:
        return {}, {}


class _ShiftedTruthTrial(Trial):
    """The same recording with its annotations 11 frames later and every true time 0.37 s later."""

    def annotations(self) -> list:
        n = self.n_frames
        return [
            replace(a, onset_frame=a.onset_frame + 11, apex_frame=a.apex_frame + 11, offset_frame=a.offset_frame + 11)
            for a in super().annotations()
            if a.offset_frame + 11 < n
        ]

    def ground_truth(self) -> tuple[dict, dict]:
        attrs, arrays = super().ground_truth()
        return attrs, {k: v + 0.37 if v.dtype.kind == "f" else v for k, v in arrays.items()}


# -- (a) spotting reads neither annotations nor ground truth ---------------------------------------
@pytest.mark.slow
def test_spot_output_is_identical_with_annotations_and_truth_shifted_or_removed(
    model_file: Path, tmp_path: Path
) -> None:
    trial = Trial(Subject.random("S09", 77), 0, CFG)
    dirs = {k: tmp_path / k for k in ("plain", "shifted", "rewritten", "removed")}
    for d in dirs.values():
        d.mkdir()
    rec = write_trial(trial, dirs["plain"] / "s.h5")
    # shifted: the same recording (a copy), coders' annotations beside it moved by 23 frames, one dropped,
    # one invented; the recording itself is never written
    shutil.copy(rec, dirs["shifted"] / "s.h5")
    with open_session(dirs["shifted"] / "s.h5", writable=True) as s:
        video = s.stream(kind="video")
        n = video.sample_count
        moved = [
            replace(a, onset_frame=a.onset_frame + 23, apex_frame=a.apex_frame + 23, offset_frame=a.offset_frame + 23)
            for a in s.annotations[1:]
            if a.offset_frame + 23 < n
        ]
        s.write_annotations([*moved, replace(s.annotations[0], onset_frame=3, apex_frame=6, offset_frame=9)], video.key)
    # rewritten: the recording written again with annotations and generator truth shifted; removed: without them
    write_trial(_ShiftedTruthTrial(trial.subject, 0, CFG), dirs["rewritten"] / "s.h5")
    write_trial(_NoTruthTrial(trial.subject, 0, CFG), dirs["removed"] / "s.h5")
    with open_session(dirs["plain"] / "s.h5") as a, open_session(dirs["shifted"] / "s.h5") as b:
        assert a.annotations and b.annotations and a.annotations != b.annotations
        apex = a.ground_truth("expression_apex_true_s")
    with open_session(dirs["rewritten"] / "s.h5") as r:
        assert r.annotations and r.annotations != a.annotations
        assert np.allclose(r.ground_truth("expression_apex_true_s"), apex + 0.37)
    with open_session(dirs["removed"] / "s.h5") as c:
        assert c.annotations == []
        with pytest.raises(MecgError):
            c.ground_truth("expression_apex_true_s")

    csv = {}
    for k, d in dirs.items():
        out = tmp_path / f"{k}.csv"
        assert main(["spot", str(d), "--model", str(model_file), "--out", str(out), "--quiet", "--workers", "1"]) == 0
        csv[k] = out.read_bytes()
    assert csv["plain"] == csv["shifted"] == csv["rewritten"] == csv["removed"]
    assert csv["plain"].count(b"\n") >= 2  # candidates were spotted: the comparison is not of empty files
    res = {k: spot_session(d / "s.h5", model_file, workers=1, log=lambda m: None) for k, d in dirs.items()}
    for k in ("shifted", "rewritten", "removed"):
        assert np.array_equal(res[k].scores, res["plain"].scores)
        assert res[k].spots == res["plain"].spots
    # the filter (eta 2, spot_session's default) looked at the heart (HRS recorded): the CCF path was compared too
    assert res["removed"].spots and all(s.hrs_apex_bpm_per_s is not None for s in res["removed"].spots)


# -- (b), (c) LOSO: the test subject enters nothing that is chosen ----------------------------------
def _spy(monkeypatch: pytest.MonkeyPatch, fold: dict) -> dict[str, list[tuple[str, str]]]:
    """Record, per thing chosen, (fold's test subject, subject of each session it was computed from)."""
    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)

    def note(what: str, sessions: list) -> None:
        seen[what] += [(fold["test"], d.subject) for d in sessions]

    real_train, real_windows = pipeline.train_model, train_mod.training_windows
    real_shape, real_choose = pipeline.me_shape_s, pipeline.choose_threshold

    def train_model(train: list, val: list, *a: object, **k: object) -> object:
        note("training", train)
        note("early stopping", val)
        return real_train(train, val, *a, **k)

    def training_windows(data: list, *a: object, **k: object) -> object:
        note("class weights and batches", data)  # the only statistics pooled across sessions
        return real_windows(data, *a, **k)

    def me_shape_s(data: list) -> object:
        note("interval shape", data)
        return real_shape(data)

    def choose_threshold(sets: list, *a: object, **k: object) -> object:
        note("threshold and eta" if len(a) > 2 and a[2] is not None else "threshold", [d for d, _ in sets])
        return real_choose(sets, *a, **k)

    monkeypatch.setattr(pipeline, "train_model", train_model)
    monkeypatch.setattr(train_mod, "training_windows", training_windows)
    monkeypatch.setattr(pipeline, "me_shape_s", me_shape_s)
    monkeypatch.setattr(pipeline, "choose_threshold", choose_threshold)
    return seen


def _log_fold(fold: dict) -> object:
    def log(msg: str) -> None:
        if msg.startswith("fold "):
            fold["test"] = msg.split("test subject ", 1)[1].split(" ", 1)[0]

    return log


@pytest.fixture(scope="module")
def spied_loso(three_subjects: list[SessionData]) -> tuple[dict[str, list[tuple[str, str]]], dict]:
    """One LOSO run (etas 1.5 and 2) with every choice instrumented: (what each choice saw, the result)."""
    import torch

    torch.set_num_threads(1)  # as tests/conftest.py sets before every test: the same numbers as a rerun there
    fold: dict = {"test": None}
    with pytest.MonkeyPatch.context() as mp:
        seen = _spy(mp, fold)
        res = loso(three_subjects, NET, TC, etas=(1.5, 2.0), log=_log_fold(fold))
    return seen, res


@pytest.mark.slow
def test_loso_test_subject_never_enters_what_is_chosen(
    three_subjects: list[SessionData], spied_loso: tuple[dict, dict]
) -> None:
    seen, res = spied_loso
    subjects = {d.subject for d in three_subjects}
    expected = {"training", "early stopping", "class weights and batches", "interval shape", "threshold"}
    expected.add("threshold and eta")
    assert set(seen) == expected
    for what, pairs in seen.items():
        assert {t for t, _ in pairs} == subjects, f"{what} was not instrumented in every fold"
        leaked = [(t, s) for t, s in pairs if t == s]
        assert not leaked, f"the test subject entered {what}: {leaked}"
    # thresholds come from the validation subject inside the training folds: the last training subject
    for t, s in seen["threshold"]:
        assert s == max(subjects - {t})
    assert [f["test_subject"] for f in res["folds"]] == sorted(subjects)
    for f in res["folds"]:
        assert set(f["spot"]["thresholds_ccf"]) == {"1.5", "2"} and f["spot"]["eta_chosen"] in (1.5, 2.0)
    assert {"plain", "ccf_1.5", "ccf_2", "ccf_val"} <= set(res["results"]) | set(res["preds"])


@pytest.mark.slow
def test_loso_choices_do_not_move_when_the_test_subjects_truth_changes(
    three_subjects: list[SessionData], spied_loso: tuple[dict, dict]
) -> None:
    before = spied_loso[1]  # the spies only record: the same run as a plain one
    last = three_subjects[-1]
    kept = last.annotations
    try:  # the last subject's truth shifted by 9 frames and one ME dropped: only its own fold's score may move
        last.annotations = [
            replace(a, onset_frame=a.onset_frame + 9, apex_frame=a.apex_frame + 9, offset_frame=a.offset_frame + 9)
            for a in kept[1:]
            if a.offset_frame + 9 < last.n
        ]
        after = loso(three_subjects, NET, TC, etas=(1.5, 2.0), log=lambda m: None)
    finally:
        last.annotations = kept
    fb, fa = before["folds"][-1], after["folds"][-1]
    assert fb["test_subject"] == fa["test_subject"] == last.subject
    assert fb["spot"] == fa["spot"]  # thresholds, eta choice, interval shape: all from the training folds
    for key in before["preds"]:
        mine = [p for p in before["preds"][key] if p.session == last.name]
        assert mine == [p for p in after["preds"][key] if p.session == last.name]


# -- the CCF as the paper states it ---------------------------------------------------------------
class _Heart:
    """A session's heart without video: R-peaks, HRS per frame (30 fps), the session's mean HRS."""

    def __init__(self, peaks_s: np.ndarray, fps: float = 30.0) -> None:
        self.fps, self.has_ecg, self.name, self.path = fps, True, "fake", "fake.h5"
        self.peaks_s = peaks_s
        self.frame_t = np.arange(int(peaks_s[-1] * fps)) / fps
        self.n = self.frame_t.size
        self.hrs = np.nan_to_num(hr_slope(peaks_s, self.frame_t))
        self.mean_hrs = mean_hr_slope(peaks_s)


def _peaks(rr: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(rr)])


def test_trial_mean_per_stimulus_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    # 60 s calm (RR 0.8 s +- 5 ms), then 60 s restless (RR jumping by +-60 ms)
    calm = 0.8 + rng.normal(0, 0.005, 75)
    restless = 0.8 + rng.choice([-0.06, 0.06], 75)
    heart = _Heart(_peaks(np.concatenate([calm, restless])))
    cut = int(calm.sum() * heart.fps)
    segs = [StimulusSegment(None, 0, 30), StimulusSegment(101, 30, cut), StimulusSegment(100, cut, heart.n)]
    monkeypatch.setattr("mecg.model.ecg_features.stimulus_segments", lambda s: segs)
    monkeypatch.setattr("mecg.session.open_session", lambda p: contextlib.nullcontext(None))
    ref, what = trial_reference(heart, "stimulus")  # type: ignore[arg-type]
    assert "3 segment(s), 1 under 10 s" in what
    assert ref[0] == pytest.approx(heart.mean_hrs)  # 1 s before the first marker: too short, session mean
    assert ref[cut - 1] < 0.5 * heart.mean_hrs < ref[cut + 1]
    # a moment in the calm clip with HRS 1.5x the session mean: an outlier there, ordinary in the session
    a = cut // 2
    heart.hrs[a] = 1.5 * heart.mean_hrs
    spot = [Spot("fake", a - 3, a, a + 6, 0.9, "ME")]
    by_segment = apply_ccf(spot, heart, 2.0, CcfRule("apex", trial="stimulus"))  # type: ignore[arg-type]
    by_session = apply_ccf(spot, heart, 2.0, CcfRule("apex", trial="session"))  # type: ignore[arg-type]
    assert by_segment[0].kept_by_ccf and not by_session[0].kept_by_ccf
    assert trial_reference(heart, "auto")[1] == what  # type: ignore[arg-type]
    # no markers: auto takes the session, stimulus is refused with the fix
    monkeypatch.setattr("mecg.model.ecg_features.stimulus_segments", lambda s: [])
    bare = _Heart(heart.peaks_s)
    assert trial_reference(bare, "auto")[1] == "session mean HRS"  # type: ignore[arg-type]
    with pytest.raises(MecgError, match="--ccf-trial session"):
        trial_reference(bare, "stimulus")  # type: ignore[arg-type]


class _Video:
    def __init__(self, n: int, fps: float) -> None:
        self.sample_count, self.timestamps = n, 100.0 + np.arange(n) / fps
        self.clock_offsets = np.array([[100.0, 0.5], [130.0, 0.5]])  # the camera's clock is 0.5 s behind


class _Markers:
    def __init__(self, texts: list[str], ts: list[float]) -> None:
        self._texts, self.timestamps = texts, np.asarray(ts)
        self.clock_offsets = np.zeros((0, 2))

    def markers(self) -> list[str]:
        return self._texts


class _Session:
    def __init__(self, video: _Video, marker_streams: list[_Markers]) -> None:
        self.video, self.marker_streams = video, marker_streams

    def stream(self, kind: str) -> _Video:
        return self.video

    def find_streams(self, kind: str) -> list[_Markers]:
        return self.marker_streams


def test_stimulus_segments_from_numeric_markers_on_the_recorders_clock() -> None:
    video = _Video(900, 30.0)  # recorder time 100.5 .. 130.5 s
    stim = _Markers(["101", "100", "117", "oops"], [102.49, 110.49, 115.49, 120.49])
    trigger = _Markers(["pulse 1", "pulse 2"], [101.0, 103.0])  # trigger-box pulses are no stimuli
    segs = stimulus_segments(_Session(video, [stim, trigger]))  # type: ignore[arg-type]
    assert segs == [
        StimulusSegment(None, 0, 60),
        StimulusSegment(101, 60, 300),
        StimulusSegment(100, 300, 450),
        StimulusSegment(117, 450, 900),
    ]
    assert stimulus_segments(_Session(video, [trigger])) == []  # type: ignore[arg-type]


def test_synthetic_sessions_carry_one_stimulus(tmp_path: Path) -> None:
    # 30 fps: the rest marker, 0.05 s before the end, then opens a segment of its own (at 15 fps it falls in
    # the last frame's period)
    path = write_trial(Trial(Subject.random("S01", 40), 0, replace(CFG, fps=30.0)), tmp_path / "s.h5")
    with open_session(path) as s:
        segs = stimulus_segments(s)
        n = s.stream(kind="video").sample_count
    # the stimulus marker comes before the first frame, rest 0.05 s before the end
    assert [(g.code, g.first_frame) for g in segs] == [(101, 0), (100, segs[1].first_frame)]
    assert segs[1].first_frame > 0.99 * n and segs[-1].stop_frame == n


def test_hrs_rule_parsing_and_legacy_checkpoints() -> None:
    assert parse_hrs_rule("apex") == ("apex", 0.25)
    assert parse_hrs_rule("window") == ("window", 0.25) and parse_hrs_rule("window:0.4") == ("window", 0.4)
    for bad in ("peak", "window:0", "window:x", "apex:0.2", "window:9"):
        with pytest.raises(MecgError, match="--ccf-hrs"):
            parse_hrs_rule(bad)
    old = {"me_rise_s": 0.1, "me_fall_s": 0.2, "threshold": 0.5, "threshold_ccf": 0.4, "eta": 2.0}
    thr, note = ccf_threshold(old, 1.5)
    assert thr == 0.4 and "tuned for eta 2" in note and "used for eta 1.5" in note
    rule, notes = ccf_rule(old)
    assert rule == LEGACY_RULE and "predates" in notes[0]
    new = {**old, "thresholds_ccf": {"1.5": 0.3, "2": 0.4}, "ccf": CcfRule().as_dict()}
    assert ccf_threshold(new, 1.5) == (0.3, None) and ccf_threshold(new, 2.0) == (0.4, None)
    with pytest.raises(MecgError, match=r"eta 1\.5, 2, not for 1\.7"):
        ccf_threshold(new, 1.7)
    rule, notes = ccf_rule(new, hrs="window:0.1", trial="session")
    assert rule == CcfRule("window", 0.1, "session") and "differs" in notes[0]
    assert ccf_rule(new) == (CcfRule(), [])
    check_spot(new, "m.pt")
    for bad in ({"thresholds_ccf": {"x": 0.3}}, {"thresholds_ccf": {"2": 1.5}}, {"ccf": {"hrs": "peak"}}):
        with pytest.raises(ModelError, match="spot"):
            check_spot({**new, **bad}, "m.pt")


class _Scores:
    """A session seen only through its frame scores and annotations (threshold choice needs no more)."""

    def __init__(self, n: int, apexes: list[int]) -> None:
        from mecg.session import Annotation

        self.name, self.fps, self.n, self.has_ecg, self.params = "v", 30.0, n, False, WINDOW
        self.annotations = [Annotation(a - 3, a, a + 6, "ME") for a in apexes]


def test_threshold_grid_reaches_below_its_old_floor_and_says_when_at_an_edge() -> None:
    n = 3000  # 100 s
    d = _Scores(n, [300, 1200, 2100])
    sc = np.zeros(n)
    bumps = {300: 0.044, 1200: 0.047, 2100: 0.041, 700: 0.02, 1700: 0.015}  # MEs score 0.04-0.05, others lower
    for c, h in bumps.items():
        sc[c - 10 : c + 11] = h * np.hanning(21)
    choice = choose_threshold([(d, sc)], 0.1, 0.2)  # type: ignore[list-item]
    assert choice.threshold < 0.05 and choice.f1 == 1.0  # the old grid stopped at 0.05 and found nothing
    assert 0.02 < choice.threshold <= 0.041 and choice.edge is None
    # every frame a peak: the grid stops where candidates would pass MAX_CANDIDATES_PER_MIN
    noisy = np.abs(np.sin(np.arange(n) * 0.7)) * 0.3
    c2 = choose_threshold([(d, noisy)], 0.1, 0.2)  # type: ignore[list-item]
    assert c2.candidates_per_min <= MAX_CANDIDATES_PER_MIN and c2.grid_low > 0.0
    # scores that put every ME at the very bottom of the grid: the choice is flagged at the low edge
    low = np.zeros(n)
    for c in (300, 1200, 2100):
        low[c - 10 : c + 11] = 0.01 * np.hanning(21)
    for c in range(550, 2900, 100):
        low[c - 10 : c + 11] = 0.5 * np.hanning(21)
    c3 = choose_threshold([(d, low)], 0.1, 0.2)  # type: ignore[list-item]
    assert c3.edge == "low" and c3.threshold == c3.grid_low == 0.01 and not c3.capped


@pytest.mark.slow
def test_checkpoint_holds_a_threshold_per_eta_and_spot_refuses_others(
    model_file: Path, three_subjects: list[SessionData], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from mecg.model.train import load_checkpoint

    spot = load_checkpoint(model_file).spot
    assert sorted(spot["thresholds_ccf"], key=float) == [f"{e:g}" for e in np.round(np.arange(1.3, 2.31, 0.1), 1)]
    assert spot["threshold_ccf"] == spot["thresholds_ccf"]["2"] and spot["ccf"] == CcfRule().as_dict()
    assert set(spot["threshold_choice"]) == {"none", *spot["thresholds_ccf"]}
    folder = str(Path(three_subjects[0].path).parent)
    out = tmp_path / "x.csv"
    assert main(["spot", folder, "--model", str(model_file), "--out", str(out), "--ccf-eta", "1.75"]) == 2
    err = capsys.readouterr().err
    assert "not for 1.75" in err and "--ccf-etas" in err and not out.exists()
    assert main(["spot", folder, "--model", str(model_file), "--out", str(out), "--ccf-hrs", "peak"]) == 2
    assert "--ccf-hrs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", folder, "--out", str(tmp_path / "m.pt"), "--ccf-etas", "2:1:0.1"])
    assert exc.value.code == 2 and "LO:HI:STEP" in capsys.readouterr().err


def test_threshold_choices_at_an_edge_or_untuned_are_warned_and_recorded() -> None:
    from mecg.model.pipeline import choose_spot_params

    n = 3000
    d = _Scores(n, [300, 1200, 2100])
    low = np.zeros(n)
    for c in (300, 1200, 2100):
        low[c - 10 : c + 11] = 0.01 * np.hanning(21)
    for c in range(550, 2900, 100):
        low[c - 10 : c + 11] = 0.5 * np.hanning(21)
    said: list[str] = []
    spot = choose_spot_params([(d, low)], 0.1, 0.2, "video", log=said.append)  # type: ignore[list-item]
    assert spot["threshold_choice"]["none"]["edge"] == "low" and spot["thresholds_ccf"] is None
    assert len(said) == 1 and "low edge" in said[0] and "keeps every validation peak" in said[0]
    said.clear()
    off = np.where(low > 0.02, low, 0.0)  # only the non-ME peaks: nothing can be found
    spot = choose_spot_params([(d, off)], 0.1, 0.2, "video", log=said.append)  # type: ignore[list-item]
    assert spot["threshold_choice"]["none"]["f1"] == 0.0
    assert len(said) == 1 and "F1 is 0 at every threshold" in said[0] and "without the CCF" in said[0]
