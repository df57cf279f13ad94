"""Write synthetic trials as session files, and whole datasets with a manifest.

A session made here looks like one the recorder makes from real devices: a ``Video`` stream
with the camera driver's timestamps, an ``ECG`` stream with ECG, trigger and strobe channels and
the amplifier driver's timestamps, a ``Markers`` stream with the stimulus code, clock-offset
measurements for each stream, plus the annotations table and, set apart, /ground_truth.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from mecg.session import SessionWriter, StreamInfo
from mecg.synth.participant import ECG_CHANNELS, ECG_UNITS, Subject, Trial, TrialConfig

#: Stimulus code of the first trial (MECG uses 101-148 for clips, 100 for rest).
FIRST_STIMULUS_CODE = 101
#: Frames rendered and appended per write (about what a recorder appends per pull).
FRAMES_PER_CHUNK = 32
#: The writer's background flush interval for a synthetic file: longer than any write takes.
BATCH_FLUSH_INTERVAL_S = 24 * 3600.0


def lsl_header(info: StreamInfo, extra_desc: str = "") -> str:
    """An LSL-style XML header for a synthetic stream (the recorder stores ``info.as_xml()`` instead).

    ``extra_desc`` is XML appended inside ``<desc>`` (e.g. a camera's ``<exposure_s>``).
    """
    chans = ""
    if info.kind == "signal":
        chans = "".join(
            f"<channel><label>{escape(lab)}</label><unit>{escape(u)}</unit><type>{escape(t)}</type></channel>"
            for lab, u, t in zip(info.channel_labels, info.channel_units, info.channel_types)
        )
        chans = f"<channels>{chans}</channels>"
    elif info.kind == "video":
        h, w = info.frame_shape[:2]
        ch = info.frame_shape[2] if len(info.frame_shape) == 3 else 1
        fmt = "mono8" if ch == 1 else "rgb8"
        chans = f"<width>{w}</width><height>{h}</height><channels>{ch}</channels><pixel_format>{fmt}</pixel_format>"
    return (
        '<?xml version="1.0"?><info>'
        f"<name>{escape(info.name)}</name><type>{escape(info.type)}</type>"
        f"<channel_count>{info.channel_count}</channel_count><nominal_srate>{info.nominal_srate_hz}</nominal_srate>"
        f"<channel_format>{info.channel_format}</channel_format><source_id>{escape(info.source_id)}</source_id>"
        f"<hostname>{escape(info.hostname)}</hostname><desc>{chans}{extra_desc}<manufacturer>mecg.synth</manufacturer></desc></info>"
    )


def _stream(extra_desc: str = "", **kw: object) -> StreamInfo:
    info = StreamInfo(**kw)  # type: ignore[arg-type]
    info.lsl_header = lsl_header(info, extra_desc)
    return info


def write_trial(
    trial: Trial, path: str | os.PathLike, *, overwrite: bool = False, progress: Callable[[int], None] | None = None
) -> Path:
    """Write ``trial`` to a session file at ``path``; ``progress(frames_done)`` is called per chunk."""
    c, subj = trial.config, trial.subject
    # A fixed, seed-derived wall-clock start keeps files byte-identical for the same seed.
    start = _dt.datetime(2026, 1, 1, 9, tzinfo=_dt.UTC) + _dt.timedelta(days=subj.seed % 365, minutes=trial.index * 5)
    shape = (c.height, c.width, 3) if c.color else (c.height, c.width)
    with SessionWriter(
        path,
        subj.subject_id,
        f"synthetic trial {trial.index}",
        overwrite=overwrite,
        fixed_time=start.isoformat(timespec="milliseconds"),
        start_time_lsl=0.0,
        # flushed once, at close: a flush in mid-write (the writer's timer, when the machine is busy)
        # changes the file's layout, and the same seed must give the same bytes
        flush_interval_s=BATCH_FLUSH_INTERVAL_S,
    ) as w:
        cam = w.add_stream(
            _stream(
                name="FaceCamera",
                type="Video",
                kind="video",
                source_id=f"mecg-synth-camera-{subj.seed}",
                hostname="synth",
                nominal_srate_hz=c.fps,
                frame_shape=shape,
                can_drop_samples=True,
                extra_desc=f"<exposure_s>{c.exposure_s:.6g}</exposure_s>",
            )
        )
        ecg = w.add_stream(
            _stream(
                name="ECG",
                type="ECG",
                source_id=f"mecg-synth-amplifier-{subj.seed}",
                hostname="synth",
                nominal_srate_hz=c.ecg_rate_hz,
                channel_format="float32",
                channel_labels=list(ECG_CHANNELS),
                channel_units=list(ECG_UNITS),
                channel_types=list(ECG_CHANNELS),
            )
        )
        mk = w.add_stream(
            _stream(
                name="Stimulus",
                type="Markers",
                kind="markers",
                source_id=f"mecg-synth-stimulus-{subj.seed}",
                hostname="synth",
            )
        )
        stamps = trial.frame_stamps()
        for i in range(0, trial.n_frames, FRAMES_PER_CHUNK):
            j = min(i + FRAMES_PER_CHUNK, trial.n_frames)
            w.append(cam, trial.frames(i, j), stamps[i:j])
            if progress:
                progress(j)
        sstamps = trial.sample_stamps()
        step = int(c.ecg_rate_hz)
        for k in range(0, trial.n_samples, step):
            m = min(k + step, trial.n_samples)
            w.append(ecg, trial.ecg(k, m), sstamps[k:m])
        w.append(mk, [str(FIRST_STIMULUS_CODE + trial.index), "100"], [0.05, c.duration_s - 0.05])
        w.append_clock_offsets(cam, trial.clock_offsets("camera"))
        w.append_clock_offsets(ecg, trial.clock_offsets("amplifier"))
        w.append_clock_offsets(mk, trial.clock_offsets("recorder"))
        w.set_annotations(trial.annotations(), cam)
        attrs, arrays = trial.ground_truth()
        w.set_ground_truth(attrs, arrays)
    return Path(path)


@dataclass(frozen=True)
class DatasetSpec:
    """What ``mecg synth`` makes: ``subjects`` x ``trials`` sessions from ``seed``."""

    out_dir: str
    subjects: int = 1
    trials: int = 1
    seed: int = 0
    config: TrialConfig = field(default_factory=TrialConfig)


def _job(args: tuple[DatasetSpec, int, int]) -> dict:
    spec, s, t = args
    subject = Subject.random(f"S{s + 1:02d}", seed=spec.seed * 1000 + s)
    trial = Trial(subject, t, spec.config)
    path = Path(spec.out_dir) / f"sub-{s + 1:02d}_trial-{t + 1:02d}.h5"
    write_trial(trial, path, overwrite=True)
    ann = trial.annotations()
    return {
        "file": path.name,
        "subject_id": subject.subject_id,
        "trial": t + 1,
        "frames": trial.n_frames,
        "samples": trial.n_samples,
        "n_me": sum(a.type == "ME" for a in ann),
        "n_mae": sum(a.type == "MaE" for a in ann),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def make_dataset(
    spec: DatasetSpec, *, workers: int | None = None, progress: Callable[[dict], None] | None = None
) -> dict:
    """Write every session of ``spec`` (in parallel processes) and ``manifest.json``; return the manifest."""
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(spec, s, t) for s in range(spec.subjects) for t in range(spec.trials)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    files = []
    if workers <= 1:
        for j in jobs:
            files.append(_job(j))
            if progress:
                progress(files[-1])
    else:
        # forkserver, not fork: a fork of a process whose other threads use HDF5 (a recorder, an app's
        # workers, an open session) can crash the child inside HDF5
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as ex:
            for rec in ex.map(_job, jobs):
                files.append(rec)
                if progress:
                    progress(rec)
    manifest = {
        "generator": "mecg.synth",
        "seed": spec.seed,
        "subjects": spec.subjects,
        "trials": spec.trials,
        "config": spec.config.as_dict(),
        "files": files,
        "note": "Ground truth of clocks and expressions is in each file's /ground_truth group; "
        "sync and model code never read it.",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
