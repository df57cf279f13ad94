"""What a session file must look like before mecg reads a byte of it: no links out, schema, density.

Run on every open (metadata only, no sample data): :func:`refuse_foreign_storage` refuses external
links, soft links, external raw storage, virtual datasets and filters mecg never writes (each could
make HDF5 read another local file or load a plugin); :func:`check_stream_schema` checks each
stream's datasets against docs/session-format.md (dtype, rank, shape) and that every chunk a
dataset's shape implies was written (a sparse 10^7-frame dataset is refused instead of read).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mecg.session.format import CHANNEL_FORMATS, SessionError, StreamInfo, StreamKind
from mecg.session.video_codec import PLUGIN_FILTER_IDS

#: HDF5 filters mecg writes: deflate, shuffle (never written, harmless), Fletcher32, and the video
#: codec plugins mecg ships through hdf5plugin (Blosc, LZ4, Zstd; see video_codec.CODECS).
ALLOWED_FILTERS = {
    h5py.h5z.FILTER_DEFLATE: "deflate",
    h5py.h5z.FILTER_SHUFFLE: "shuffle",
    3: "fletcher32",
    **{fid: name for name, fid in PLUGIN_FILTER_IDS.items()},
}


def refuse_foreign_storage(f: h5py.File, path: Path) -> None:
    """Raise :class:`SessionError` when ``f`` holds anything that reads outside the file or runs a plugin."""
    problems: list[str] = []

    def visit(name: str, link: h5py.HardLink | h5py.SoftLink | h5py.ExternalLink) -> None:
        if isinstance(link, h5py.ExternalLink):
            problems.append(f"/{name} is an external link to {link.filename}:{link.path}")
        elif isinstance(link, h5py.SoftLink):
            problems.append(f"/{name} is a soft link to {link.path}")
        elif isinstance(link, h5py.HardLink):
            obj = f.get(name)
            if isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    problems.append(f"/{name} is a virtual dataset (its data lives in other files)")
                elif obj.external:
                    problems.append(f"/{name} stores its data in external file(s) {[e[0] for e in obj.external]}")
                else:
                    plist = obj.id.get_create_plist()
                    for i in range(plist.get_nfilters()):
                        fid = plist.get_filter(i)[0]
                        if fid not in ALLOWED_FILTERS:
                            problems.append(f"/{name} uses HDF5 filter {fid}, which mecg never writes")

    try:
        f.visititems_links(visit)
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise SessionError(f"{path} is corrupted: its groups cannot be listed ({exc})") from None
    if problems:
        raise SessionError(
            f"{path} refers to data outside itself or to code mecg does not run: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + "; mecg never writes such files and will not follow them. Re-export the recording from its source."
        )


def expected_chunks(ds: h5py.Dataset) -> int:
    """Chunks a fully written chunked dataset of this shape holds."""
    return int(np.prod([-(-s // c) for s, c in zip(ds.shape, ds.chunks)])) if ds.shape else 1


def check_dense(ds: h5py.Dataset, where: str) -> None:
    """Raise when chunks (or contiguous bytes) that the shape implies were never written."""
    if ds.chunks is not None:
        have, want = ds.id.get_num_chunks(), expected_chunks(ds)
        if have < want:
            raise SessionError(
                f"{where} claims {ds.shape[0]} rows but only {have} of its {want} chunks were ever written "
                "(a sparse or crafted dataset); the file is damaged, re-export it from its source"
            )
    elif ds.size and ds.id.get_storage_size() < ds.size * ds.dtype.itemsize:
        raise SessionError(f"{where} holds fewer bytes than its shape {ds.shape} needs; the file is damaged")


def check_stream_schema(path: Path, key: str, g: h5py.Group, info: StreamInfo) -> None:
    """Check a stream's datasets against the format (metadata only); raise :class:`SessionError`."""
    where = f"{path}: stream {key!r}"
    data, ts, off = g["data"], g["timestamps"], g["clock_offsets"]
    for name, ds in (("data", data), ("timestamps", ts), ("clock_offsets", off)):
        if not isinstance(ds, h5py.Dataset):
            raise SessionError(f"{where}: {name!r} is not a dataset; the file is damaged or not written by mecg")
    if ts.ndim != 1 or ts.dtype != np.float64:
        raise SessionError(f"{where}: timestamps must be (n,) float64, got {ts.shape} {ts.dtype}")
    if off.ndim != 2 or off.shape[1] != 2 or off.dtype != np.float64:
        raise SessionError(f"{where}: clock_offsets must be (m, 2) float64, got {off.shape} {off.dtype}")
    if info.kind == StreamKind.SIGNAL:
        want = np.dtype(CHANNEL_FORMATS[info.channel_format])
        n_ch = len(info.channel_labels)
        if data.ndim != 2 or data.shape[1] != n_ch or data.dtype != want:
            raise SessionError(
                f"{where}: a signal's data must be (n, {n_ch}) {want} (channel_format {info.channel_format}), "
                f"got {data.shape} {data.dtype}"
            )
    elif info.kind == StreamKind.VIDEO:
        if data.dtype != np.uint8 or data.shape[1:] != tuple(info.frame_shape):
            raise SessionError(
                f"{where}: video data must be (n, {', '.join(map(str, info.frame_shape))}) uint8, "
                f"got {data.shape} {data.dtype}"
            )
    elif data.ndim != 1 or h5py.check_string_dtype(data.dtype) is None:
        raise SessionError(f"{where}: markers must be (n,) strings, got {data.shape} {data.dtype}")
    for name, ds in (("data", data), ("timestamps", ts), ("clock_offsets", off)):
        check_dense(ds, f"{where} {name}")
