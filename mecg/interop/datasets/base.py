"""What both dataset layouts share: the error, option names, a video as a folder of numbered images."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from mecg.errors import MecgError


class Dataset(StrEnum):
    """The public datasets :func:`mecg.interop.datasets.import_dataset` reads."""

    CASME2 = "casme2"
    SAMM_LV = "samm-lv"


class OffsetRule(StrEnum):
    """An annotation without offset: ``mirror`` = apex + (apex - onset), ``apex`` = the apex."""

    MIRROR = "mirror"
    APEX = "apex"


class ColorMode(StrEnum):
    """Pixel format of the imported frames: ``auto`` is grey when the images are."""

    AUTO = "auto"
    GREY = "grey"
    RGB = "rgb"


#: Dataset names accepted by :func:`import_dataset` and ``mecg import-dataset``.
DATASETS: tuple[str, ...] = tuple(Dataset)
OFFSET_RULES: tuple[str, ...] = tuple(OffsetRule)
COLOR_MODES: tuple[str, ...] = tuple(ColorMode)
#: Image file types read from a video folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class DatasetError(MecgError):
    """A dataset folder or annotation file cannot be read as the named public dataset."""


_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass
class VideoFolder:
    """One long video as a folder of numbered images.

    ``numbers`` are the image numbers parsed from the file names (sorted, unique); index ``i``
    of the session's video stream is image ``numbers[i]``.
    """

    key: str  #: session name (file stem), e.g. ``casme2_s15_0101``
    subject_id: str  #: pseudonymous subject id stored in the session, e.g. ``casme2-s15``
    folder: Path
    aliases: frozenset[str] = frozenset()  #: names ``--videos`` accepts for this video
    files: list[Path] = field(default_factory=list)
    numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def scan(self) -> None:
        """List the numbered images of the folder (sorted by number)."""
        found: dict[int, Path] = {}
        for p in self.folder.iterdir():
            if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
                continue
            m = _TRAILING_NUMBER.search(p.stem)
            if not m:
                continue
            n = int(m.group(1))
            if n in found:
                raise DatasetError(f"{self.folder}: images {found[n].name} and {p.name} both carry number {n}")
            found[n] = p
        order = sorted(found)
        self.numbers = np.array(order, dtype=np.int64)
        self.files = [found[n] for n in order]


def subdirs(p: Path) -> list[Path]:
    """The sub-folders of ``p``, sorted by name."""
    return sorted((c for c in p.iterdir() if c.is_dir()), key=lambda c: c.name)


def resolve_images(
    root: Path, images: str | os.PathLike | None, default: str, looks_right: Callable[[Path], bool]
) -> Path:
    """The folder holding the video folders: ``images`` if given, else ``root/default``, else ``root``."""
    if images is not None:
        p = Path(images)
        p = p if p.is_absolute() else root / p
        if not p.is_dir():
            raise DatasetError(f"image folder {p} does not exist")
        return p
    p = root / default
    if p.is_dir():
        nested = p / default  # some mirrors unpack rawpic.zip into rawpic/rawpic
        if not looks_right(p) and nested.is_dir() and looks_right(nested):
            return nested
        return p
    if looks_right(root):
        return root
    return p  # does not exist; the caller reports the layout it expected
