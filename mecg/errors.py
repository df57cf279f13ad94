"""The project's base exception: every error a user can cause derives from it.

The CLI prints the message of a :class:`MecgError` without a traceback and exits non-zero.
Each room defines its own subclasses (``SessionError`` in :mod:`mecg.session`, ...).
"""


class MecgError(Exception):
    """An error caused by input or environment that the user can fix; the message says how."""
