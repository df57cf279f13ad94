"""Public dataset adapters: CAS(ME)^2 and SAMM Long Videos, as distributed, into video-only sessions.

Each long video becomes one session file with one video stream (``FaceCamera``) and its coded
expressions in ``/annotations``, so ``mecg spot`` and ``mecg eval`` run on them unchanged. The
datasets carry **no device timestamps and no ECG**: a frame's timestamp is
``(image number - first image number) / fps`` seconds (30 fps for CAS(ME)^2, 200 fps for SAMM-LV),
so a gap in the image numbering stays a gap in time.

Layouts read (docs/datasets.md has the full mapping rules)::

    CAS(ME)^2   ROOT/rawpic/s15/15_0101disgustingteeth/img1.jpg ...    (30 fps)
                ROOT/CAS(ME)^2code_final(Updated).xlsx or CAS(ME)^2code_final.xlsx: sheet 1 the
                codes (no header: participant, clip e.g. anger1_1, onset, apex, offset, AUs,
                emotion, type, self-reported emotion), sheet "naming rule1" participant -> s15,
                sheet "naming rule2" video code 0401 -> clip name anger1
    SAMM-LV     ROOT/SAMM_longvideos/006_1/006_1_0001.jpg ...          (200 fps)
                ROOT/SAMM_LongVideos_V*_Release.xlsx: a few title rows, then a header row with
                Subject, Filename (006_1_2), Inducement Code, Onset, Apex, Offset, Duration, Type
                (Micro - 1/2 | Macro), Action Units, Notes

Frame numbers in the spreadsheets are image numbers (1-based, as in the file names); they become
0-based indices counted from the first image present. ``.csv`` exports of the sheets are read too.

Modules: :mod:`.base` (error, option enums, a video as numbered images), :mod:`.sheets`
(annotation file and rows -> frame indices), :mod:`.casme2` and :mod:`.samm_lv` (the two layouts),
:mod:`.images` (images -> session), :mod:`.importer` (the import both layouts run).
"""

from __future__ import annotations

import os

from mecg.interop.datasets.base import COLOR_MODES, DATASETS, OFFSET_RULES, ColorMode, Dataset, DatasetError, OffsetRule
from mecg.interop.datasets.casme2 import CASME2_FPS, import_casme2
from mecg.interop.datasets.importer import ImportReport
from mecg.interop.datasets.samm_lv import SAMM_LV_FPS, import_samm_lv

__all__ = [
    "CASME2_FPS",
    "COLOR_MODES",
    "DATASETS",
    "OFFSET_RULES",
    "SAMM_LV_FPS",
    "ColorMode",
    "Dataset",
    "DatasetError",
    "ImportReport",
    "OffsetRule",
    "import_casme2",
    "import_dataset",
    "import_samm_lv",
]


def import_dataset(dataset: Dataset | str, root: str | os.PathLike, out_dir: str | os.PathLike, **kw) -> ImportReport:
    """:func:`import_casme2` or :func:`import_samm_lv` by name (one of :data:`DATASETS`)."""
    if dataset == Dataset.CASME2:
        return import_casme2(root, out_dir, **kw)
    if dataset == Dataset.SAMM_LV:
        return import_samm_lv(root, out_dir, **kw)
    raise DatasetError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
