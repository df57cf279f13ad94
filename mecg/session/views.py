"""Checked, read-only views of h5py datasets and groups: HDF5 read errors become :class:`SessionError`."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

from mecg.session.format import SessionError

#: Errors h5py raises for damaged files; the reader turns them into :class:`SessionError`.
H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError)


class CheckedDataset:
    """An h5py dataset whose reads raise :class:`SessionError` (naming the file and dataset) instead of
    HDF5's errors: a failed Fletcher32 checksum, an undecodable chunk, a chunk past the end of the file.

    Slicing, ``shape``, ``dtype``, ``len``, ``asstr()`` and ``np.asarray`` work as on the dataset.
    """

    def __init__(self, ds: h5py.Dataset, where: str) -> None:
        self.ds = ds
        self.where = where

    def _fail(self, exc: BaseException) -> SessionError:
        return SessionError(
            f"{self.where} cannot be read: {exc}. The file is damaged (run `mecg validate --deep`); "
            "restore it from a backup or re-export it"
        )

    def __getitem__(self, key: object) -> np.ndarray:
        try:
            return self.ds[key]
        except H5_ERRORS as exc:
            raise self._fail(exc) from None

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = self[()]
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return len(self.ds)

    def asstr(self) -> CheckedDataset:
        """The dataset read as Python strings (variable-length UTF-8)."""
        return CheckedDataset(self.ds.asstr(), self.where)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.ds, name)


class CheckedGroup:
    """A read-only view of one or two h5py groups (derivatives first, then a v1 recording's own).

    ``g.attrs``, ``"name" in g``, ``g["name"]`` (a :class:`CheckedDataset` or :class:`CheckedGroup`),
    ``g.get``, ``g.keys()``, ``len(g)`` and iteration work as on an h5py group.
    """

    def __init__(self, groups: list[h5py.Group], where: str) -> None:
        self._groups = groups
        self.where = where

    @property
    def attrs(self) -> dict:
        """Attributes of the first group (the one that takes precedence); empty when there is none."""
        try:
            return dict(self._groups[0].attrs) if self._groups else {}
        except H5_ERRORS as exc:
            raise SessionError(f"{self.where}: attributes cannot be read ({exc}); the file is damaged") from None

    def _find(self, name: str) -> h5py.Group | h5py.Dataset | None:
        for g in self._groups:
            try:
                if name in g:
                    return g[name]
            except H5_ERRORS as exc:
                raise SessionError(f"{self.where}/{name} cannot be read ({exc}); the file is damaged") from None
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __getitem__(self, name: str) -> CheckedDataset | CheckedGroup:
        obj = self._find(name)
        if obj is None:
            raise KeyError(f"{self.where} has no {name!r}")
        if isinstance(obj, h5py.Dataset):
            return CheckedDataset(obj, f"{self.where}/{name}")
        return CheckedGroup([obj], f"{self.where}/{name}")

    def get(self, name: str, default: object = None) -> object:
        return self[name] if name in self else default

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for g in self._groups:
            try:
                seen.update(dict.fromkeys(g.keys()))
            except H5_ERRORS as exc:
                raise SessionError(f"{self.where} cannot be listed ({exc}); the file is damaged") from None
        return list(seen)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())
