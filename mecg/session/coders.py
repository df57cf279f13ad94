"""Coder sets: each coder's annotations of a session kept apart, and the one set the model uses.

Every coder's set lives in the session's derivatives file as ``/coders/<id>``, a table with the
same columns and attributes as ``/annotations`` (docs/session-format.md). The recording's own
``/annotations`` (a simulated participant's truth, a dataset's codes) is the read-only set
``"recording"``. One set is the **reference**: :func:`set_reference` copies it to the derivatives'
``/annotations`` (attribute ``coder`` naming it), so :attr:`Session.annotations`, and with it
``mecg train``, ``mecg eval`` and ``mecg stats``, read that set. Every change is one atomic update
of the derivatives file; the recording is never written.
"""

from __future__ import annotations

import re

import h5py

from mecg.session.annotations import Annotation, read_annotations, write_annotations
from mecg.session.format import ANNOTATIONS, SessionError, StreamKind
from mecg.session.reader import Session
from mecg.session.views import H5_ERRORS

#: Group of the derivatives file that holds one subgroup per coder.
CODERS = "coders"
#: Id of the recording's own annotations (read-only; not stored under /coders).
RECORDING = "recording"
#: What a coder id may look like: 1 to 64 of letters, digits, ``_``, ``.``, ``-``.
CODER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: The ME rule (paper-notes): an expression is an ME if onset->offset <= 0.5 s or onset->apex <= 0.25 s.
ME_MAX_DURATION_S = 0.5
ME_MAX_RISE_S = 0.25


def check_coder_id(coder: str) -> str:
    """Return ``coder`` if it is a valid coder id, else raise :class:`SessionError` saying what is allowed."""
    if not isinstance(coder, str) or not CODER_ID.fullmatch(coder) or coder in (".", ".."):
        raise SessionError(
            f"coder id {coder!r} is not valid: use 1 to 64 letters, digits, '_', '.' or '-' (e.g. A, coder_2)"
        )
    return coder


def _coders_group(session: Session) -> h5py.Group | None:
    f = session.derivatives
    if f is None or CODERS not in f:
        return None
    g = f[CODERS]
    if not isinstance(g, h5py.Group):
        raise SessionError(f"{session.derivatives_path}: /{CODERS} is not a group; the file is damaged, move it away")
    return g


def _table(g: object) -> h5py.Group | None:
    return g if isinstance(g, h5py.Group) and "onset_frame" in g else None


def _unnamed(f: h5py.File | None) -> h5py.Group | None:
    """The derivatives' /annotations when written without naming a coder (``Session.write_annotations``)."""
    g = _table(f.get(ANNOTATIONS)) if f is not None else None
    return g if g is not None and not g.attrs.get("coder", "") else None


def _recording_table(session: Session) -> h5py.Group | None:
    """The set ``"recording"``: the annotations that came with the recording.

    The recording's own /annotations table; else the copy kept in the derivatives' /coders/recording;
    else the derivatives' /annotations written without a coder (``mecg record --simulate`` writes the
    simulated participant's expressions there after the recording is closed).
    """
    own = _table(session._file.get(ANNOTATIONS))
    if own is not None:
        return own
    f = session.derivatives
    if f is None:
        return None
    kept = _table(f.get(f"{CODERS}/{RECORDING}"))
    return kept if kept is not None else _unnamed(f)


def _read(session: Session, group: h5py.Group, coder: str) -> list[Annotation]:
    try:
        return read_annotations(group)
    except SessionError as exc:
        raise SessionError(f"{session.path}: coder {coder!r}: {exc}") from None
    except H5_ERRORS as exc:
        raise SessionError(f"{session.path}: coder {coder!r}'s annotations cannot be read ({exc}); damaged") from None


def coder_sets(session: Session) -> dict[str, list[Annotation]]:
    """Every coder's annotations, by coder id: ``"recording"`` first (if the recording has a table), then by id.

    Each list is sorted by onset (then offset), frames 0-based and inclusive.
    """
    out: dict[str, list[Annotation]] = {}
    rec = _recording_table(session)
    if rec is not None:
        out[RECORDING] = _read(session, rec, RECORDING)
    g = _coders_group(session)
    if g is not None:
        for coder in sorted(g):
            if coder != RECORDING and isinstance(g[coder], h5py.Group):
                out[coder] = _read(session, g[coder], coder)
    return out


def coder_ids(session: Session) -> list[str]:
    """The coder ids of :func:`coder_sets`, without reading the tables."""
    ids = [RECORDING] if _recording_table(session) is not None else []
    g = _coders_group(session)
    return ids + ([c for c in sorted(g) if c != RECORDING and isinstance(g[c], h5py.Group)] if g is not None else [])


def _unknown(session: Session, coder: str) -> SessionError:
    have = ", ".join(coder_ids(session)) or "none"
    return SessionError(
        f"{session.path.name} has no coder {coder!r}; its coders are: {have} "
        f"(import a sheet with `mecg annotate {session.path.name} import SHEET --coder {coder}`)"
    )


def coder_set(session: Session, coder: str) -> list[Annotation]:
    """One coder's annotations; an unknown coder raises :class:`SessionError` listing the coders there are."""
    check_coder_id(coder)
    if coder == RECORDING:
        rec = _recording_table(session)
        if rec is not None:
            return _read(session, rec, RECORDING)
        raise _unknown(session, coder)
    g = _coders_group(session)
    if g is None or coder not in g or not isinstance(g[coder], h5py.Group):
        raise _unknown(session, coder)
    return _read(session, g[coder], coder)


def coder_stream(session: Session, coder: str) -> str:
    """Key of the video stream whose frames ``coder``'s set counts."""
    check_coder_id(coder)
    if coder == RECORDING:
        g = _recording_table(session)
    else:
        cg = _coders_group(session)
        g = cg.get(coder) if cg is not None else None
    if g is None:
        raise _unknown(session, coder)
    v = g.attrs.get("video_stream", "")
    return v.decode() if isinstance(v, bytes) else str(v)


def coder_source(session: Session, coder: str) -> str:
    """Where ``coder``'s set came from (a sheet's file name, a merge), ``"(the recording)"`` for the recording's."""
    check_coder_id(coder)
    if coder == RECORDING:
        if _recording_table(session) is None:
            raise _unknown(session, coder)
        return "(the recording)"
    g = _coders_group(session)
    if g is None or coder not in g:
        raise _unknown(session, coder)
    v = g[coder].attrs.get("source", "")
    return v.decode() if isinstance(v, bytes) else str(v)


def me_rule(onset_frame: int, apex_frame: int, offset_frame: int, fps: float) -> str:
    """``"ME"`` if onset->offset <= 500 ms or onset->apex <= 250 ms at ``fps`` (Hz), else ``"MaE"``.

    Times are frame differences over the frame rate: ``(offset - onset) / fps`` seconds.
    """
    if not fps > 0:
        raise SessionError(f"the ME rule needs a frame rate > 0 fps, got {fps}")
    eps = 1e-9  # 15 frames at 30 fps are exactly 0.5 s
    if (offset_frame - onset_frame) / fps <= ME_MAX_DURATION_S + eps:
        return "ME"
    return "ME" if (apex_frame - onset_frame) / fps <= ME_MAX_RISE_S + eps else "MaE"


def video_fps(session: Session, video_stream: str) -> float:
    """Frame rate of a video stream in Hz: its nominal rate, else the measured one."""
    s = session.streams.get(video_stream)
    if s is None or s.info.kind != StreamKind.VIDEO:
        raise SessionError(f"{session.path.name}: {video_stream!r} is not a video stream")
    fps = s.info.nominal_srate_hz or s.effective_srate_hz
    if not fps > 0:
        raise SessionError(f"{session.path.name}: video stream {video_stream!r} has no frame rate")
    return float(fps)


def check_frames(session: Session, annotations: list[Annotation], video_stream: str) -> None:
    """Refuse a video stream that is not one, or an annotation that ends after its last frame."""
    s = session.streams.get(video_stream)
    if s is None or s.info.kind != StreamKind.VIDEO:
        videos = ", ".join(k for k, v in session.streams.items() if v.info.kind == StreamKind.VIDEO) or "none"
        raise SessionError(f"{session.path.name}: {video_stream!r} is not a video stream (video streams: {videos})")
    n = s.sample_count
    for a in annotations:
        if a.offset_frame >= n:
            raise SessionError(
                f"annotation [{a.onset_frame}, {a.offset_frame}] ends after the last frame ({n - 1}) of "
                f"video stream {video_stream!r}"
            )


def _write_table(parent: h5py.Group, name: str, annotations: list[Annotation], video_stream: str) -> h5py.Group:
    if name in parent:
        del parent[name]
    g = parent.create_group(name)
    write_annotations(g, annotations, video_stream)
    return g


def _keep_unnamed(f: h5py.File, own_table: bool) -> None:
    """Before /annotations is replaced: keep a table written there without a coder as a coder set.

    It becomes ``"recording"`` when the recording has no table of its own (a simulated participant's
    expressions), else ``"unnamed"`` (``unnamed_2``, ...), so that replacing the reference loses nothing.
    """
    g = _unnamed(f)
    if g is None:
        return
    parent = f.require_group(CODERS)
    if not own_table and RECORDING not in parent:
        name = RECORDING
    else:
        name = next(n for i in range(1, 10**6) if (n := "unnamed" if i == 1 else f"unnamed_{i}") not in parent)
    f.copy(g, parent, name=name)
    parent[name].attrs["source"] = "(the recording)" if name == RECORDING else "annotations written without a coder"


def _write_reference(
    f: h5py.File, coder: str, annotations: list[Annotation], video_stream: str, own_table: bool
) -> None:
    _keep_unnamed(f, own_table)
    g = _write_table(f, ANNOTATIONS, annotations, video_stream)
    g.attrs["coder"] = coder
    f.require_group(CODERS).attrs["reference"] = coder


def write_coder_set(
    session: Session, coder: str, annotations: list[Annotation], video_stream: str, *, source: str = ""
) -> None:
    """Replace ``coder``'s set with ``annotations`` (frames of ``video_stream``) in the derivatives file.

    One atomic update; if ``coder`` is the reference, ``/annotations`` is replaced with it in the same
    update. The session must be open with ``writable=True``. ``source`` (e.g. the sheet's file name)
    is kept as an attribute. ``"recording"`` is read-only.
    """
    write_coder_sets(session, {coder: annotations}, video_stream, source=source)


def write_coder_sets(
    session: Session,
    sets: dict[str, list[Annotation]],
    video_stream: str,
    *,
    source: str = "",
    reference: str | None = None,
) -> None:
    """Replace several coders' sets, and optionally make one of them the reference, in one atomic update.

    Either everything is stored or, on any error, nothing. ``reference`` must be one of ``sets``.
    """
    for coder in sets:
        check_coder_id(coder)
        if coder == RECORDING:
            raise SessionError(f"coder id {RECORDING!r} names the recording's own annotations, which are read-only")
    if reference is not None and reference not in sets:
        raise SessionError(f"reference coder {reference!r} is not among the sets written ({', '.join(sets)})")
    rows = {c: list(a) for c, a in sets.items()}
    for a in rows.values():
        check_frames(session, a, video_stream)
    ref = reference if reference is not None else reference_coder(session)
    own = _table(session._file.get(ANNOTATIONS)) is not None

    def change(f: h5py.File) -> None:
        if CODERS in f and not isinstance(f[CODERS], h5py.Group):
            raise SessionError(f"/{CODERS} is not a group")
        parent = f.require_group(CODERS)
        for coder, a in rows.items():
            g = _write_table(parent, coder, a, video_stream)
            g.attrs["source"] = source
        if ref in rows:
            _write_reference(f, ref, rows[ref], video_stream, own)

    names = ", ".join(repr(c) for c in rows)
    session._store(f"the annotations of coder {names}", change)


def delete_coder_set(session: Session, coder: str) -> None:
    """Remove ``coder``'s set. The reference set cannot be removed: set another reference first."""
    coder_set(session, coder)  # raises for an unknown coder
    if coder == RECORDING:
        raise SessionError(f"coder id {RECORDING!r} names the recording's own annotations, which are read-only")
    if reference_coder(session) == coder:
        raise SessionError(
            f"coder {coder!r} is the reference set that train, eval and stats use; "
            f"make another coder the reference first (`mecg annotate {session.path.name} reference ID`)"
        )

    def change(f: h5py.File) -> None:
        del f[CODERS][coder]

    session._store(f"the removal of coder {coder!r}", change)


def reference_coder(session: Session) -> str | None:
    """The coder whose set :attr:`Session.annotations` returns (and train, eval and stats use), or None.

    None when the session is not annotated, or when its annotations match no coder's set (written
    some other way, or changed since).
    """
    f = session.derivatives
    ann = _table(f.get(ANNOTATIONS)) if f is not None else None
    if ann is None:
        return RECORDING if _recording_table(session) is not None else None
    v = ann.attrs.get("coder", "")
    coder = v.decode() if isinstance(v, bytes) else str(v)
    if not coder:  # written without a coder: it is the recording's set when it is what "recording" reads
        rec = _recording_table(session)
        return RECORDING if rec is not None and rec == ann else None
    if not CODER_ID.fullmatch(coder):
        return None
    try:
        same = coder_set(session, coder) == session.annotations
    except SessionError:
        return None
    return coder if same else None


def set_reference(session: Session, coder: str) -> None:
    """Make ``coder``'s set the reference: written as the derivatives' ``/annotations`` (attribute ``coder``).

    Afterwards :attr:`Session.annotations` returns that set. Unknown coders raise
    :class:`SessionError` listing the coders there are.
    """
    rows = coder_set(session, coder)
    stream = coder_stream(session, coder)
    check_frames(session, rows, stream)
    own = _table(session._file.get(ANNOTATIONS)) is not None
    session._store(f"coder {coder!r} as the reference", lambda f: _write_reference(f, coder, rows, stream, own))
