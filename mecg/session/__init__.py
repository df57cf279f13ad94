"""The HDF5 session format: the contract between recording, sync and the model.

Imports nothing from the other rooms of mecg. See docs/session-format.md.
"""

from mecg.session.annotations import EXPRESSION_TYPES, Annotation
from mecg.session.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SessionError,
    SessionVersionError,
    StreamInfo,
)
from mecg.session.reader import Session, Stream, open_session, validate_session
from mecg.session.writer import SessionWriter

__all__ = [
    "EXPRESSION_TYPES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Annotation",
    "Session",
    "SessionError",
    "SessionVersionError",
    "SessionWriter",
    "Stream",
    "StreamInfo",
    "open_session",
    "validate_session",
]
