"""Live spotting: candidates while recording, equal to the as-live replay of the file, no recording loss.

The recording test runs the simulated lab (``mecg record --simulate``'s devices) with the Recorder API
and a :class:`LiveAnalysis` beside it; the others feed synthetic session files. Latency (candidates
within 2 s of their offset) is measured in benchmarks/bench_live_spot.py, not asserted here.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from netns import ecg_truth
from waiting import wait_until

from mecg.acquire.live_analysis import LiveAnalysis, LiveEvent
from mecg.acquire.recorder import Recorder, RecorderConfig
from mecg.acquire.rig import Rig, RigConfig
from mecg.cli.main import main
from mecg.errors import MecgError
from mecg.model.live_spotter import (
    LiveCandidate,
    LiveSpotParams,
    LiveSpotter,
    compare_spots,
    replay_live,
    stored_live_spots,
)
from mecg.model.spotting import spot_session
from mecg.session import StreamInfo, open_session
from mecg.synth import Subject, Trial, TrialConfig, write_trial

FAST = LiveSpotParams(ccf_eta=2.0, warmup_s=2.0, min_beats=5)


def _same(a: list[LiveCandidate], b: list[LiveCandidate]) -> bool:
    return len(a) == len(b) and all(x.same_as(y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def trial_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = TrialConfig(duration_s=12.0, fps=30.0, width=192, height=144, me_per_min=20, mae_per_min=5)
    return write_trial(Trial(Subject.random("S01", 7), 0, cfg), tmp_path_factory.mktemp("live") / "t.h5")


@pytest.mark.slow  # two replays and the offline spotter of a 12 s file: 10-20 s on 2 loaded cores
def test_replay_does_not_depend_on_chunks_and_reports_the_hr_slope(trial_file: Path) -> None:
    a = replay_live(trial_file, LiveSpotter("t", FAST), chunk_s=0.1)
    b = replay_live(trial_file, LiveSpotter("t", FAST), chunk_s=0.73)
    assert a and _same(a, b)
    assert {c.spot.type for c in a} <= {"ME", "MaE"}
    for c in a:
        assert c.spot.onset_frame <= c.spot.apex_frame <= c.spot.offset_frame
        assert c.apex_time_s <= c.offset_time_s
        assert c.eta == 2.0 and c.ccf in ("applied", "warm-up")
    applied = [c for c in a if c.ccf == "applied"]
    assert applied, "after the warm-up the CCF sees the heart"
    for c in applied:
        assert c.hrs_apex_bpm_per_s is not None and c.mean_hrs_bpm_per_s and c.mean_hrs_bpm_per_s > 0
        if c.spot.type == "ME":
            assert c.spot.kept_by_ccf == (c.hrs_apex_bpm_per_s > 2.0 * c.mean_hrs_bpm_per_s)
    # the marker text carries everything back
    assert all(LiveCandidate.from_json(c.to_json(), "t").same_as(c) for c in a)
    # how far the causal variant is from the standard offline spotting: reported, both ways of counting
    offline = spot_session(trial_file, workers=1).spots
    res = compare_spots([c.spot for c in a], offline)
    assert res["overall"]["tp"] + res["overall"]["fn"] == len(offline)


def _push_session(path: Path, live: LiveAnalysis, chunk_s: float) -> None:
    """Hand a recorded session to ``live`` as the recorder's pull threads would: streams, clock offsets, then
    every stream's samples in time order, ``chunk_s`` at a time; then finish."""
    with open_session(path) as s:
        streams = {k: st for k, st in s.streams.items() if st.info.type != "LiveSpots"}
        for key, st in streams.items():
            live.add_stream(key, st.info)
        live.begin(None)
        for key, st in streams.items():
            rows = st.clock_offsets
            live.clock_offset(key, float(rows[0, 1]) if len(rows) else 0.0)
        ts = {k: np.asarray(st.timestamps) for k, st in streams.items()}
        pos = dict.fromkeys(streams, 0)
        t, t_end = min(float(v[0]) for v in ts.values() if v.size), max(float(v[-1]) for v in ts.values() if v.size)
        while t <= t_end + chunk_s:
            t += chunk_s
            for k, st in streams.items():
                a, stop = pos[k], int(np.searchsorted(ts[k], t, side="left"))
                if stop > a:
                    data = st.frames(a, stop) if st.info.kind == "video" else st.data[a:stop]
                    live.push(k, data if st.info.kind != "markers" else list(data), ts[k][a:stop])
                    pos[k] = stop
    live.finish()


class _Stuck:
    """An analyser that holds its first chunk until released: the queue behind it fills up."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.fed: list[tuple[int, int]] = []
        self.skipped: list[tuple[int, int]] = []

    def add_stream(self, key: str, info: StreamInfo) -> bool:
        return True

    def feed(self, key: str, first: int, data: object, ts: np.ndarray) -> list[LiveEvent]:
        self.release.wait(30)
        self.fed.append((first, len(ts)))
        return [LiveEvent(f"chunk {first}", float(ts[0]))]

    def skip(self, key: str, first: int, count: int) -> list[LiveEvent]:
        self.skipped.append((first, count))
        return []

    def clock_offset(self, key: str, offset_s: float) -> list[LiveEvent]:
        return []

    def finish(self) -> list[LiveEvent]:
        return []

    def summary(self) -> dict[str, object]:
        return {"chunks": len(self.fed)}


def test_a_stuck_analysis_skips_work_and_never_blocks_the_pull_thread() -> None:
    stuck = _Stuck()
    live = LiveAnalysis(stuck, max_queue_s=1.0)
    info = StreamInfo(name="cam", type="VideoRaw", kind="video", nominal_srate_hz=30.0, frame_shape=(4, 4))
    live.add_stream("cam", info)
    live.begin(None)
    frame = np.zeros((2, 16), dtype=np.int8)
    for i in range(200):  # 400 frames while the analyser holds the first chunk: pushing must not wait
        live.push("cam", frame, np.array([2 * i, 2 * i + 1]) / 30.0)
    assert live.stats.skipped > 0
    stuck.release.set()
    live.finish()
    fed, skipped = sum(n for _, n in stuck.fed), sum(n for _, n in stuck.skipped)
    assert fed + skipped == 400 and skipped == live.stats.skipped
    # every frame is accounted for exactly once, in order
    spans = sorted(stuck.fed + stuck.skipped)
    assert [a for a, _ in spans] == list(np.cumsum([0] + [n for _, n in spans[:-1]]))
    assert len(live.events()) == len(stuck.fed) and live.summary()["chunks"] == len(stuck.fed)


def test_a_camera_slower_than_its_nominal_rate_cannot_put_the_analysis_further_behind() -> None:
    """The bound is stream time, not frames at the nominal rate: a 150 fps camera that delivers 25
    frames a second (a loaded simulator, a dim scene's long exposures) must not let the queue hold
    six times as much time; the analysis falls at most ``max_queue_s`` behind, for ECG five times that."""
    stuck = _Stuck()
    live = LiveAnalysis(stuck, max_queue_s=1.0)
    cam = StreamInfo(name="cam", type="VideoRaw", kind="video", nominal_srate_hz=150.0, frame_shape=(4, 4))
    ecg = StreamInfo(name="ecg", type="ECG", kind="signal", nominal_srate_hz=1000.0, channel_labels=["ECG"])
    live.add_stream("cam", cam)
    live.add_stream("ecg", ecg)
    live.begin(None)
    frame = np.zeros((1, 16), dtype=np.int8)
    for i in range(250):  # 10 s at 25 frames/s, one frame a chunk, and 40 ms of ECG beside each
        live.push("cam", frame, np.array([i / 25.0]))
        live.push("ecg", np.zeros((40, 1)), i / 25.0 + np.arange(40) / 1000.0)
        if i == 0:  # an empty pull result: nothing to analyse, and it must not hide how far behind the queue is
            live.push("cam", frame[:0], np.zeros(0))
    stuck.release.set()
    live.finish()
    # the analyser held the first chunk; what it was fed after it is what the queue held: at most 1 s of
    # video (26 frames at 25 frames/s, not the 150 a frame count at the nominal rate would allow), 5 s of ECG
    fed = sorted(stuck.fed)
    assert live.stats.skipped_samples["cam"] > 0
    assert len([n for _, n in fed if n == 1]) <= 27
    assert len([n for _, n in fed if n == 40]) <= 5 * 25 + 2
    assert sum(n for _, n in stuck.fed + stuck.skipped) == 250 + 250 * 40  # every sample accounted for once


@pytest.mark.slow
@pytest.mark.parametrize("process", [True, False], ids=["process", "thread"])
def test_live_spotting_while_recording_matches_the_replay_and_loses_nothing(tmp_path: Path, process: bool) -> None:
    out = tmp_path / "rec.h5"
    rig = Rig(RigConfig(simulate=True, seed=2, fps=30.0, size=(160, 120), me_per_min=20, mae_per_min=4)).start()
    # a queue long enough that a slow or loaded machine catches up later instead of skipping (skipping under
    # load is tested on its own below): the comparison with the replay needs every frame analysed
    live = LiveAnalysis(LiveSpotter("rec", FAST), max_queue_s=60.0, finish_timeout_s=120.0, process=process)
    rec = Recorder(RecorderConfig(out, required=rig.queries(), min_free_mb=0, analysis=live))
    try:
        rec.start()
        assert wait_until(lambda: any('"spotted_candidate"' in ev.text for _, ev in live.events()), 60)
        during = [(t, ev) for t, ev in live.events()]  # arrived while recording
        final = rec.stop()
    finally:
        rec.stop()
        stats = rig.stats()
        truth = rig.simulation.truth()
        rig.close()
    assert final.complete and not live.stats.error and live.stats.skipped == 0
    # nothing lost by the recorder: what is missing was never sent (a loaded machine may make the simulated
    # camera skip a frame at the source, as a real one would). The ECG is checked against the amplifier's own
    # samples (by value); the recorder counts from timestamps, which come from the driver's clock fit: a fit that
    # moves forward by over half a sample period on a loaded machine shows as one "dropped" sample that was
    # recorded (seen once: missing 1, none lost). The count may be over by that, never under.
    by_key = {s.key: s for s in final.streams}
    with open_session(out) as s:
        ecg = s.stream(kind="signal")
        ecg_loss = ecg_truth(truth, np.asarray(ecg.data[:, 0], dtype=np.float64), ecg.timestamps)
    assert ecg_loss.missing <= stats["ecg"]["lost"], ecg_loss
    assert ecg_loss.missing <= by_key["ECG"].missing <= ecg_loss.missing + 2, (by_key["ECG"], ecg_loss)
    assert by_key["FaceCamera"].missing <= stats["camera"]["dropped"]
    assert during and all(t < final.elapsed_s + rec.start_lsl for t, _ in during)
    stored, summary = stored_live_spots(out)
    assert stored and summary["method"] == "baseline" and summary["events"] == len(stored)
    assert summary["mode"] == ("process" if process else "thread")
    # arrival after the offset (latency) is recorded with each one: measured in the benchmark, not here
    live_cands = [LiveCandidate.from_json(ev.text, "rec") for _, ev in live.events()]
    assert _same(stored, live_cands)
    with open_session(out) as s:
        assert s.stream(type="LiveSpots").sample_count == len(stored)
    assert _same(replay_live(out, LiveSpotter("rec", FAST)), stored)


def test_record_live_spot_with_a_missing_model_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["record", "--simulate", "--out", str(tmp_path / "x.h5"), "--live-spot", str(tmp_path / "no.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and "no such model file" in err and "Traceback" not in err
    assert not (tmp_path / "x.h5").exists()


def _untrained_checkpoint(fps: float = 30.0):
    """A small CMCL-Net with seeded random weights (what matters to these tests is that live windows are fixed by
    the data) and a threshold its scores cross."""
    import torch

    from mecg.model.checkpoint import Checkpoint
    from mecg.model.cmclnet import CMCLConfig, CMCLNet
    from mecg.model.frontend import FrontEndParams, default_k
    from mecg.model.windows import WindowParams

    torch.manual_seed(0)
    spot = {"threshold": 0.3, "threshold_ccf": 0.3, "me_rise_s": 0.1, "me_fall_s": 0.2, "eta": 2.0, "val_ap": 0.0}
    return Checkpoint(CMCLNet(CMCLConfig()).eval(), WindowParams(), FrontEndParams(k_frames=default_k(fps)), {}, spot)


@pytest.mark.slow  # two replays through CMCL-Net
def test_cmclnet_live_windows_do_not_depend_on_chunks(trial_file: Path) -> None:
    from mecg.model.checkpoint import Checkpoint
    from mecg.model.frontend import FrontEndParams, default_k
    from mecg.model.windows import WindowParams

    ck = _untrained_checkpoint()
    spot = ck.spot
    params = LiveSpotParams(method="cmclnet", ccf_eta=2.0, warmup_s=2.0, min_beats=5)
    a = replay_live(trial_file, LiveSpotter("t", params, ck), chunk_s=0.1)
    b = replay_live(trial_file, LiveSpotter("t", params, ck), chunk_s=0.61)
    assert a and _same(a, b)
    # in a process of its own (as `mecg record --live-spot MODEL.pt` runs it: network and checkpoint pickled
    # there) it decides the same candidates from the same samples
    live = LiveAnalysis(LiveSpotter("t", params, ck), process=True, max_queue_s=600.0, finish_timeout_s=120.0)
    live.prepare()
    _push_session(trial_file, live, chunk_s=0.25)
    assert not live.stats.error and live.summary()["mode"] == "process" and live.stats.skipped == 0
    assert _same([LiveCandidate.from_json(ev.text, "t") for _, ev in live.events()], a)
    assert all(c.spot.type == "ME" and c.method == "cmclnet" and c.spot.score >= 0.3 for c in a)
    assert any(c.ccf == "applied" and c.hrs_apex_bpm_per_s is not None for c in a)
    with pytest.raises(MecgError, match="needs a model"):
        LiveSpotter("t", params)
    # a model for another frame rate is refused when the video stream is announced (the recording goes on)
    other = Checkpoint(ck.model, WindowParams(), FrontEndParams(k_frames=default_k(150.0)), {}, spot)
    video = StreamInfo(name="cam", type="VideoRaw", kind="video", nominal_srate_hz=30.0, frame_shape=(4, 4))
    with pytest.raises(MecgError, match="train a model for this frame rate"):
        LiveSpotter("t", params, other).add_stream("cam", video)


def _decided(path: Path, params: LiveSpotParams, ck: object = None) -> list[tuple[LiveCandidate, float]]:
    at: list[float] = []
    found = replay_live(path, LiveSpotter("t", params, ck), decided_at=at)  # type: ignore[arg-type]
    assert len(at) == len(found)
    return list(zip(found, at))


@pytest.mark.slow  # four replays of the 12 s file, two through CMCL-Net
def test_a_candidate_is_decided_once_the_ecg_waited_for_has_come(trial_file: Path) -> None:
    """The waits are what live spotting's latency is made of: a candidate is never decided before the ECG has
    reached its apex + ``ecg_lookahead_s`` (the CCF's slope) and, for CMCL-Net, a window centre after it +
    ``window_lookahead_s``; shortening a wait brings candidates out sooner by about as much."""
    import statistics

    base = {a: _decided(trial_file, replace(FAST, ecg_lookahead_s=a)) for a in (1.0, 2.0)}
    for wait, found in base.items():
        assert found
        for c, t in found:
            if np.isfinite(t) and not c.in_warmup:  # decided while the streams ran: after the wait
                assert t >= c.apex_time_s + wait - 1e-9

    # the baseline's candidates come from the video alone: the wait changes when, never which
    def spots(found: list) -> list:
        return sorted((c.spot.apex_frame, c.spot.onset_frame, c.spot.offset_frame, c.spot.type) for c, _ in found)

    assert spots(base[1.0]) == spots(base[2.0])
    lat = {a: [t - c.offset_time_s for c, t in f if np.isfinite(t) and not c.in_warmup] for a, f in base.items()}
    assert 0.8 < statistics.median(lat[2.0]) - statistics.median(lat[1.0]) < 1.2

    ck = _untrained_checkpoint()
    net = LiveSpotParams(method="cmclnet", ccf_eta=2.0, warmup_s=2.0, min_beats=5, ecg_lookahead_s=0.5)
    soon, late = (_decided(trial_file, replace(net, window_lookahead_s=w), ck) for w in (1.0, 2.0))
    assert soon and late
    for found, wait in ((soon, 1.0), (late, 2.0)):
        for c, t in found:
            if np.isfinite(t) and not c.in_warmup:  # the score curve is known beyond the apex: windows after it
                assert t >= c.apex_time_s + wait
    # a model trained for live spotting with a 1 s lookahead (mecg train --live-lookahead 1) waits 1 s by itself
    trained = replace(ck, window=replace(ck.window, ecg_lookahead_s=1.0))
    own = _decided(trial_file, net, trained)
    spotter = LiveSpotter("t", net, trained)
    replay_live(trial_file, spotter)
    assert spotter.summary()["window_wait_s"] == 1.0  # reported with the live analysis's summary
    med = {
        k: statistics.median(t - c.offset_time_s for c, t in f if np.isfinite(t))
        for k, f in (("soon", soon), ("late", late), ("own", own))
    }
    assert 0.7 < med["late"] - med["soon"] < 1.3
    assert 0.7 < med["late"] - med["own"] < 1.3


def test_cmclnet_live_uses_the_threshold_tuned_for_its_eta_and_refuses_others() -> None:
    from mecg.model.checkpoint import Checkpoint
    from mecg.model.cmclnet import CMCLConfig, CMCLNet
    from mecg.model.frontend import FrontEndParams, default_k
    from mecg.model.windows import WindowParams

    spot = {
        "threshold": 0.3,
        "threshold_ccf": 0.25,
        "thresholds_ccf": {"1.5": 0.2, "2.0": 0.25},
        "me_rise_s": 0.1,
        "me_fall_s": 0.2,
        "eta": 2.0,
        "val_ap": 0.0,
    }
    ck = Checkpoint(CMCLNet(CMCLConfig()).eval(), WindowParams(), FrontEndParams(k_frames=default_k(30.0)), {}, spot)
    video = StreamInfo(name="cam", type="VideoRaw", kind="video", nominal_srate_hz=30.0, frame_shape=(4, 4))
    ecg = StreamInfo(name="ecg", type="ECG", kind="signal", nominal_srate_hz=250.0, channel_labels=["ECG"])
    for eta, want in ((1.5, 0.2), (2.0, 0.25), (None, 0.3)):
        live = LiveSpotter("t", LiveSpotParams(method="cmclnet", ccf_eta=eta), ck)
        live.add_stream("cam", video)
        live.add_stream("ecg", ecg)
        assert live.scorer is not None and live.scorer.threshold() == want
    with pytest.raises(MecgError, match=r"not for 1\.7"):  # before recording starts, not when the video appears
        LiveSpotter("t", LiveSpotParams(method="cmclnet", ccf_eta=1.7), ck)


@pytest.mark.slow  # a simulated recording through the CLI
def test_record_live_spot_prints_candidates_and_stores_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli.h5"
    args = ["record", "--simulate", "--seed", "4", "--duration", "9", "--fps", "30", "--size", "160x120"]
    args += ["--me-per-min", "20", "--out", str(out), "--quiet", "--json", "--live-spot", "--ccf-eta", "2"]
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    live = summary["live_spot"]
    assert summary["complete"] and not live["error"]
    # every recorded frame was analysed or counted as skipped (a slow or loaded machine skips, never blocks)
    with open_session(out) as s:
        video = s.stream(kind="video")
        assert live["analysed_samples"][video.key] + live["skipped_samples"].get(video.key, 0) == video.sample_count
    assert "live spotting:" in captured.err
    stored, info = stored_live_spots(out)
    assert live["candidates"] == len(stored) == info["events"]
    assert captured.err.count("live: ") == len(stored)  # each one shown as it came
    if stored:  # its latency is measured with each one (asserted in no unit test, see the benchmark)
        assert live["latency_s"] is not None or all(c.in_warmup for c in stored)


def test_record_live_spot_with_a_model_for_another_frame_rate_is_refused_before_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import torch

    from mecg.model.cmclnet import CMCLConfig, CMCLNet
    from mecg.model.frontend import FrontEndParams, default_k
    from mecg.model.train import save_checkpoint
    from mecg.model.windows import WindowParams

    torch.manual_seed(0)
    model = tmp_path / "m150.pt"
    spot = {"threshold": 0.3, "threshold_ccf": 0.3, "me_rise_s": 0.1, "me_fall_s": 0.2, "eta": 2.0, "val_ap": 0.0}
    save_checkpoint(model, CMCLNet(CMCLConfig()), WindowParams(), FrontEndParams(k_frames=default_k(150.0)), spot, {})
    out = tmp_path / "x.h5"
    rc = main(["record", "--simulate", "--fps", "30", "--out", str(out), "--live-spot", str(model)])
    err = capsys.readouterr().err
    assert rc == 2 and "not for 30 fps video" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow  # one replay of the 12 s file through the CLI
def test_spot_as_live_writes_what_the_live_spotter_decides(trial_file: Path, tmp_path: Path) -> None:
    from mecg.model.evaluate import read_predictions

    out = tmp_path / "live.csv"
    assert main(["spot", str(trial_file), "--as-live", "--out", str(out), "--quiet"]) == 0
    expected = replay_live(trial_file, LiveSpotter("t", LiveSpotParams(ccf_eta=2.0)))
    rows = read_predictions(out)  # the kept ones, as mecg eval reads them
    assert sorted((r.onset, r.offset, r.type) for r in rows) == sorted(
        (c.spot.onset_frame, c.spot.offset_frame, c.spot.type) for c in expected if c.spot.kept_by_ccf
    )
    assert rows


def test_a_model_trained_on_features_of_another_front_end_version_comes_with_a_notice() -> None:
    """Features change between front-end versions (same parameters, slightly different numbers): a model trained
    on older ones still spots, offline (`mecg spot` prints it) and live (in the analysis's notices), saying so."""
    from mecg.model.frontend import FRONTEND_VERSION

    ck = _untrained_checkpoint()
    assert replace(ck, frontend_key={"version": FRONTEND_VERSION}).features_notice() is None
    old = replace(ck, frontend_key={"version": FRONTEND_VERSION - 1})
    notice = old.features_notice()
    assert notice and f"version {FRONTEND_VERSION - 1}" in notice and "train it again" in notice
    params = LiveSpotParams(method="cmclnet", ccf_eta=2.0)
    assert LiveSpotter("t", params, old).notices == [notice]
