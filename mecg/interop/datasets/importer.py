"""The import both layouts run: check options, find videos and annotations, write sessions and a manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from mecg.interop.datasets.base import (
    COLOR_MODES,
    OFFSET_RULES,
    ColorMode,
    Dataset,
    DatasetError,
    OffsetRule,
    VideoFolder,
    resolve_images,
)
from mecg.interop.datasets.images import write_session
from mecg.interop.datasets.sheets import AnnotationRow, find_annotation_file, map_row


@dataclass(frozen=True)
class Layout:
    """How one public dataset is laid out on disk; :func:`import_layout` runs the import with it."""

    dataset: Dataset  #: name in the report and the manifest
    title: str  #: name in each session's notes, e.g. ``CAS(ME)^2``
    fps: float  #: frame rate of the release in Hz
    images_dir: str  #: the folder of video folders under the dataset root, e.g. ``rawpic``
    layout: str  #: the expected layout, for messages
    manifest: str  #: the manifest's file name in the output folder
    looks_right: Callable[[Path], bool]  #: whether a folder holds this layout's video folders
    #: the video folders under the image folder (appending notes to the problem list), by key
    find_videos: Callable[[Path, list[str]], Mapping[object, VideoFolder]]
    annotation_patterns: tuple[str, ...]  #: file-name patterns of the annotation file, best first
    annotation_what: str  #: the annotation file it expects, for messages
    #: the annotation rows of a file, given the video folders (appending notes to the problem list)
    read_rows: Callable[[Path, Mapping, list[str]], list[AnnotationRow]]


class ImportOptions(TypedDict, total=False):
    """The keyword options every layout's import takes (documented at :func:`import_casme2`)."""

    annotations: str | os.PathLike | None
    images: str | os.PathLike | None
    max_frames: int | None
    resize: tuple[int, int] | None
    videos: Sequence[str] | None
    color: ColorMode | str
    missing_offset: OffsetRule | str
    strict: bool
    overwrite: bool
    workers: int
    progress: Callable[[str, int, int], None] | None


@dataclass
class ImportReport:
    """What an import wrote and every annotation row it could not use as given."""

    dataset: str
    fps: float
    sessions: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  #: rows skipped or changed, one line each
    missing_videos: list[str] = field(default_factory=list)  #: rows naming a video that is not there

    def as_dict(self) -> dict:
        """The report as the manifest's JSON fields."""
        return {
            "dataset": self.dataset,
            "fps": self.fps,
            "sessions": self.sessions,
            "problems": self.problems,
            "missing_videos": self.missing_videos,
        }


def _select(videos: list[VideoFolder], wanted: Sequence[str] | None) -> list[VideoFolder]:
    if not wanted:
        return videos
    tokens = [t.strip() for w in wanted for t in str(w).split(",") if t.strip()]
    chosen = [v for v in videos if v.aliases & set(tokens)]
    unknown = [t for t in tokens if not any(t in v.aliases for v in videos)]
    if unknown:
        have = ", ".join(v.key for v in videos[:8]) + (" ..." if len(videos) > 8 else "")
        raise DatasetError(f"no video named {', '.join(unknown)}; videos are: {have or 'none'}")
    return chosen


def import_layout(
    lay: Layout,
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    annotations: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    max_frames: int | None = None,
    resize: tuple[int, int] | None = None,
    videos: Sequence[str] | None = None,
    color: ColorMode | str = ColorMode.AUTO,
    missing_offset: OffsetRule | str = OffsetRule.MIRROR,
    strict: bool = False,
    overwrite: bool = False,
    workers: int = 2,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImportReport:
    """Import the dataset ``lay`` describes; the parameters are those of :func:`import_casme2`."""
    if color not in COLOR_MODES:
        raise DatasetError(f"color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
    if missing_offset not in OFFSET_RULES:
        raise DatasetError(f"missing_offset must be one of {', '.join(OFFSET_RULES)}, got {missing_offset!r}")
    if max_frames is not None and max_frames < 1:
        raise DatasetError(f"max_frames must be >= 1, got {max_frames}")
    if resize is not None and (len(resize) != 2 or min(resize) < 1):
        raise DatasetError(f"resize must be (width, height) in pixels, got {resize!r}")
    root_p = Path(root)
    if not root_p.exists():
        raise DatasetError(f"dataset folder {root_p} does not exist")
    if not root_p.is_dir():
        raise DatasetError(f"{root_p} is not a folder; give the folder the dataset was unpacked into")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} exists and is not a folder; choose a folder for the sessions")

    problems: list[str] = []
    fps = lay.fps
    pics = resolve_images(root_p, images, lay.images_dir, lay.looks_right)
    if not pics.is_dir():
        raise DatasetError(f"unknown layout: {root_p} holds no {pics.name} folder; expected {lay.layout}")
    found = lay.find_videos(pics, problems)
    if not found:
        raise DatasetError(f"unknown layout: {pics} holds no video folders; expected {lay.layout}")

    if annotations is not None:
        ann = Path(annotations)
        if not ann.is_file():
            raise DatasetError(f"annotation file {ann} does not exist")
    else:
        dirs = list(dict.fromkeys([root_p, pics.parent, pics]))
        ann = find_annotation_file(dirs, lay.annotation_patterns, lay.annotation_what)
    rows = lay.read_rows(ann, found, problems)

    selected = _select(sorted(found.values(), key=lambda v: v.key), videos)
    all_keys = {v.key for v in found.values()}
    report = ImportReport(lay.dataset, fps)
    report.missing_videos = [
        f"{r.where} ({r.label}): no such video folder in {pics}" for r in rows if r.video not in all_keys
    ]
    if strict and report.missing_videos:
        raise DatasetError(
            f"{len(report.missing_videos)} annotation row(s) name videos that are not in {pics}, e.g. "
            f"{report.missing_videos[0]}"
        )

    plans = []
    for v in selected:
        v.scan()
        if not len(v.numbers):
            problems.append(f"{v.folder}: no numbered images; no session written")
            continue
        n = len(v.numbers) if max_frames is None else min(max_frames, len(v.numbers))
        anns = []
        for r in rows:
            if r.video != v.key:
                continue
            a = map_row(r, v, missing_offset, problems)
            if a is not None and a.offset_frame >= n:
                problems.append(f"{r.where} ({r.label}): skipped, ends after the {n} frames kept (--max-frames)")
                a = None
            if a is not None:
                anns.append(a)
        if len(v.numbers) > 1 and int(v.numbers[-1] - v.numbers[0]) + 1 != len(v.numbers):
            problems.append(f"{v.folder}: image numbers have gaps; timestamps keep them")
        plans.append((v, anns, n, out / f"{v.key}.h5"))
    if not plans:
        raise DatasetError(f"no video with images to import in {pics}")
    if not overwrite:
        for *_, p in plans:
            if p.exists():
                raise DatasetError(f"{p} already exists; pass --overwrite or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    name = lay.title
    for v, anns, n, p in plans:
        rel = v.folder.relative_to(pics.parent) if v.folder.is_relative_to(pics.parent) else v.folder
        notes = (
            f"{name} video {rel} imported by mecg import-dataset from {ann.name}. No device timestamps and "
            f"no ECG: frame time = (image number - {int(v.numbers[0])}) / {fps:g} fps."
        )
        mode = write_session(
            v,
            anns,
            p,
            fps,
            notes,
            n_frames=n,
            color=color,
            size=resize,
            overwrite=overwrite,
            workers=workers,
            progress=progress,
        )
        report.sessions.append(
            {
                "file": p.name,
                "video": str(rel),
                "frames": n,
                "first_image_number": int(v.numbers[0]),
                "pixel_format": "mono8" if mode == ColorMode.GREY else "rgb8",
                "n_me": sum(a.type == "ME" for a in anns),
                "n_mae": sum(a.type == "MaE" for a in anns),
            }
        )
    report.problems = problems
    mpath = out / lay.manifest
    try:  # an earlier import into the same folder (other --videos) keeps its sessions listed
        earlier = json.loads(mpath.read_text())["sessions"] if mpath.exists() else []
    except (ValueError, KeyError, TypeError):
        earlier = []
    fresh = {s["file"] for s in report.sessions}
    manifest = {
        **report.as_dict(),
        "sessions": sorted(
            [s for s in earlier if isinstance(s, dict) and s.get("file") not in fresh] + report.sessions,
            key=lambda s: s["file"],
        ),
        "annotation_file": ann.name,
        "options": {
            "max_frames": max_frames,
            "resize": list(resize) if resize else None,
            "videos": list(videos) if videos else None,
            "color": color,
            "missing_offset": missing_offset,
        },
        "timestamps": "no device timestamps: t = (image number - first image number) / fps",
        "ecg": "none",
    }
    mpath.write_text(json.dumps(manifest, indent=2) + "\n")
    return report
