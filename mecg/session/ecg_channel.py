"""Which stream of a session carries the ECG, and which of its columns is the ECG: one rule for all of mecg.

ECG reaches mecg in a stream of type ECG (mecg's amplifier) or inside a multi-channel stream of type
EXG or EEG (OpenBCI GUI, BrainFlow-based apps, BioSemi), where one channel is labelled ECG or EKG.

**The automatic rule**, over the signal streams (numeric, not video, not markers):

- a channel is an ECG channel when its label or its type starts with ``ECG`` or ``EKG``
  (case-insensitive); among several, one labelled exactly ``ECG``/``EKG`` wins, else the first;
- a stream of type ECG without such a channel has its ECG in column 0 (mecg's own files);
- the ECG stream is the one signal stream with an ECG channel. None: the session has no ECG.
  Several: ambiguous, an :class:`EcgChannelError` names them and says how to choose.

**An explicit choice** overrides it: ``[STREAM:]LABEL`` or ``[STREAM:]INDEX``. ``STREAM`` is a
stream key, name or type; ``LABEL`` a channel label (case-insensitive); ``INDEX`` a 0-based column.
``mecg record --ecg-channel`` stores the choice in the recording (root attribute ``ecg_channel``,
docs/session-format.md), so sync and the model use it later; ``--ecg-channel`` on ``mecg sync``,
``spot`` and ``train`` overrides the stored one. A choice that matches nothing, or more than one
channel, is an :class:`EcgChannelError` naming the candidates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import zip_longest
from typing import TYPE_CHECKING

from mecg.session.format import SessionError, StreamInfo, StreamKind

if TYPE_CHECKING:
    from mecg.session.reader import Session, Stream

#: Label or channel-type prefixes that mark an ECG channel.
ECG_PREFIXES = ("ECG", "EKG")
#: Root attribute of a recording that holds the explicit choice (text as given to ``--ecg-channel``).
ECG_CHANNEL_ATTR = "ecg_channel"


class EcgChannelError(SessionError):
    """The ECG channel of a session or stream is absent, ambiguous, or the explicit choice matches nothing."""


@dataclass(frozen=True)
class EcgChannel:
    """The ECG of a session: stream ``key``, ``column`` (0-based) in its samples, and that channel's ``label``."""

    stream: str
    column: int
    label: str

    def describe(self) -> str:
        """``EXG:ECG (column 3)`` — for messages and reports."""
        return f"{self.stream}:{self.label} (column {self.column})"


def _is_ecg(text: str) -> bool:
    return text.strip().upper().startswith(ECG_PREFIXES)


def ecg_columns(info: StreamInfo) -> list[int]:
    """0-based columns of a signal stream whose channel label or type says ECG/EKG (may be empty)."""
    if info.kind != StreamKind.SIGNAL:
        return []
    return [
        i
        for i, (label, typ) in enumerate(zip_longest(info.channel_labels, info.channel_types, fillvalue=""))
        if _is_ecg(label) or _is_ecg(typ)
    ]


def auto_column(info: StreamInfo) -> int | None:
    """The ECG column of one stream by the automatic rule (module docstring); None if it carries no ECG."""
    cols = ecg_columns(info)
    if cols:
        exact = [i for i in cols if _label(info, i).strip().upper() in ECG_PREFIXES]
        return (exact or cols)[0]
    if info.kind == StreamKind.SIGNAL and info.type.strip().upper() == "ECG" and info.channel_count > 0:
        return 0
    return None


def _label(info: StreamInfo, col: int) -> str:
    return info.channel_labels[col] if col < len(info.channel_labels) else f"ch{col + 1}"


def _signals(streams: Mapping[str, StreamInfo]) -> dict[str, StreamInfo]:
    return {k: v for k, v in streams.items() if v.kind == StreamKind.SIGNAL}


def _stream_matches(key: str, info: StreamInfo, want: str) -> bool:
    return want in (key, info.name) or want.lower() == info.type.lower()


def _list(streams: Mapping[str, StreamInfo]) -> str:
    """Every signal stream with its channels, for error messages."""
    parts = [
        f"{k} (type {v.type}: " + ", ".join(f"{i} {_label(v, i)}" for i in range(v.channel_count)) + ")"
        for k, v in _signals(streams).items()
    ]
    return "; ".join(parts) or "no signal stream"


def split_choice(choice: str, streams: Mapping[str, StreamInfo]) -> tuple[list[str], str]:
    """``[STREAM:]CHANNEL`` -> (keys of the signal streams it may name, channel text).

    The text before the last ``:`` is a stream only when it names one (key, name or type); a label
    that itself holds ``:`` is taken whole.
    """
    signals = _signals(streams)
    text = choice.strip()
    if ":" in text:
        head, _, tail = text.rpartition(":")
        keys = [k for k, v in signals.items() if _stream_matches(k, v, head.strip())]
        if keys and tail.strip():
            return keys, tail.strip()
    return list(signals), text


def resolve_choice(choice: str, streams: Mapping[str, StreamInfo], where: str = "") -> EcgChannel:
    """The channel an explicit ``[STREAM:]LABEL|INDEX`` choice names among ``streams`` (key -> info).

    Raises :class:`EcgChannelError` naming the candidates when it names no channel or several.
    """
    pre = f"{where}: " if where else ""
    keys, chan = split_choice(choice, streams)
    if not chan:
        raise EcgChannelError(f"{pre}empty ECG channel choice; give LABEL, INDEX or STREAM:LABEL")
    signals = _signals(streams)
    if chan.isdigit():
        col = int(chan)
        fit = [k for k in keys if col < signals[k].channel_count]
        if len(fit) > 1:  # a bare index: the stream that carries ECG by the automatic rule, if only one does
            carrying = [k for k in fit if auto_column(signals[k]) is not None]
            fit = carrying if len(carrying) == 1 else fit
        if len(fit) != 1:
            raise EcgChannelError(
                f"{pre}ECG channel {choice!r}: "
                + ("no signal stream has" if not fit else f"{len(fit)} streams ({', '.join(fit)}) have")
                + f" column {col}; choose with STREAM:INDEX or STREAM:LABEL among: {_list(streams)}"
            )
        return EcgChannel(fit[0], col, _label(signals[fit[0]], col))
    hits = [
        (k, i)
        for k in keys
        for i in range(signals[k].channel_count)
        if _label(signals[k], i).strip().lower() == chan.lower()
    ]
    if len(hits) != 1:
        what = "no channel" if not hits else "several channels (" + ", ".join(f"{k}:{i}" for k, i in hits) + ")"
        raise EcgChannelError(
            f"{pre}ECG channel {choice!r} matches {what}; choose with STREAM:LABEL or STREAM:INDEX "
            f"(INDEX 0-based) among: {_list(streams)}"
        )
    k, i = hits[0]
    return EcgChannel(k, i, _label(signals[k], i))


def pick_ecg(streams: Mapping[str, StreamInfo], choice: str = "", where: str = "") -> EcgChannel | None:
    """The ECG among ``streams`` (key -> info): ``choice`` when given, else the automatic rule.

    None when no stream carries ECG (and nothing was chosen). Raises :class:`EcgChannelError` when
    the choice names no channel or several, or when several streams carry ECG and nothing chose.
    """
    if choice and choice.strip():
        return resolve_choice(choice, streams, where)
    found = [(k, c) for k, v in _signals(streams).items() if (c := auto_column(v)) is not None]
    if not found:
        return None
    if len(found) > 1:
        pre = f"{where}: " if where else ""
        names = ", ".join(f"{k}:{_label(streams[k], c)}" for k, c in found)
        raise EcgChannelError(
            f"{pre}several streams carry ECG ({names}); choose one with --ecg-channel STREAM:LABEL, "
            f"e.g. --ecg-channel {found[0][0]}:{_label(streams[found[0][0]], found[0][1])}"
        )
    k, c = found[0]
    return EcgChannel(k, c, _label(streams[k], c))


def stream_ecg_column(info: StreamInfo, choice: str = "", key: str = "") -> int | None:
    """The ECG column of one stream seen alone (a live recorder or display), or None if it is not the ECG.

    With ``choice``, the stream is the ECG only if the choice names one of its channels (its stream
    part, if any, must name this stream); without, the automatic rule.
    """
    if not (choice and choice.strip()):
        return auto_column(info)
    try:
        return resolve_choice(choice, {key or info.name: info}).column
    except EcgChannelError:
        return None


def stored_choice(session: Session) -> str:
    """The explicit ECG choice a recording stores (``mecg record --ecg-channel``); '' when none."""
    return str(session.attr(ECG_CHANNEL_ATTR, "") or "")


def find_ecg(session: Session, choice: str = "") -> EcgChannel | None:
    """The session's ECG: ``choice``, else the recording's stored choice, else the automatic rule.

    None when the session has no ECG. Raises :class:`EcgChannelError` when ambiguous or when the
    choice matches nothing.
    """
    infos = {k: s.info for k, s in session.streams.items()}
    return pick_ecg(infos, choice or stored_choice(session), str(session.path))


def ecg_stream(session: Session, choice: str = "") -> tuple[Stream, EcgChannel]:
    """The ECG stream of ``session`` and its ECG channel; raises :class:`EcgChannelError` when there is none."""
    ch = find_ecg(session, choice)
    if ch is None:
        have = _list({k: s.info for k, s in session.streams.items()})
        raise EcgChannelError(
            f"{session.path}: no ECG: no stream of type ECG and no channel labelled ECG/EKG; name the ECG with "
            f"--ecg-channel STREAM:LABEL or STREAM:INDEX among: {have}"
        )
    return session.streams[ch.stream], ch


def column_in(session: Session, stream_key: str, choice: str = "") -> int:
    """The ECG column of ``stream_key`` (e.g. the stream a sync result names).

    The session's ECG channel when it is in that stream, else that stream's automatic column, else 0.
    """
    info = session.streams[stream_key].info
    try:
        ch = find_ecg(session, choice)
    except EcgChannelError:
        ch = None
    if ch is not None and ch.stream == stream_key:
        return ch.column
    col = auto_column(info)
    return 0 if col is None else col
