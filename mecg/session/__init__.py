"""The HDF5 session format: the contract between recording, sync and the model.

Imports nothing from the other rooms of mecg. See docs/session-format.md.
"""

from mecg.session.annotations import EXPRESSION_TYPES, Annotation
from mecg.session.derivatives import can_store_derivatives, derivatives_path
from mecg.session.format import (
    DERIVATIVES_SUFFIX,
    FORMAT_NAME,
    FORMAT_VERSION,
    SessionError,
    SessionVersionError,
    StreamInfo,
    StreamKind,
)
from mecg.session.reader import Session, Stream, open_session
from mecg.session.validation import Report, check_session, validate_session
from mecg.session.writer import SessionWriter

__all__ = [
    "DERIVATIVES_SUFFIX",
    "EXPRESSION_TYPES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Annotation",
    "Report",
    "Session",
    "SessionError",
    "SessionVersionError",
    "SessionWriter",
    "Stream",
    "StreamInfo",
    "StreamKind",
    "can_store_derivatives",
    "check_session",
    "derivatives_path",
    "open_session",
    "validate_session",
]
