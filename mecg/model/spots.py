"""One spotted expression interval: what every spotter returns and what the spot CSV holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mecg.model.evaluate import Interval

#: Columns of the spot CSV that ``mecg spot`` writes and ``mecg eval`` reads, in order.
SPOT_COLUMNS = ("session", "onset", "apex", "offset", "score", "type", "kept_by_ccf")
#: What a spot is: a micro-expression or a macro-expression.
SpotType = Literal["ME", "MaE"]


@dataclass(frozen=True)
class Spot:
    """A spotted interval of one session.

    Attributes
    ----------
    session : str
        The session's name (its file name without ``.h5``).
    onset_frame, apex_frame, offset_frame : int
        Inclusive frame indices (0-based) of the interval and its apex.
    score : float
        The spotter's score at the apex (baseline: smoothed flow score; CMCL-Net: ME probability, 0-1).
    type : str
        ``"ME"`` (micro-expression) or ``"MaE"`` (macro-expression).
    kept_by_ccf : bool
        False when the candidate clip filter rejected it (it stays in the output, ``mecg eval`` skips it).
    hrs_apex_bpm_per_s : float or None
        The heart-rate slope (bpm/s) the CCF found at the apex; None when the CCF did not look.
    """

    session: str
    onset_frame: int
    apex_frame: int
    offset_frame: int
    score: float
    type: SpotType
    kept_by_ccf: bool = True
    hrs_apex_bpm_per_s: float | None = None

    def as_row(self) -> dict[str, object]:
        """The spot CSV row (:data:`SPOT_COLUMNS`; score with 6 significant digits, booleans in lower case)."""
        return {
            "session": self.session,
            "onset": self.onset_frame,
            "apex": self.apex_frame,
            "offset": self.offset_frame,
            "score": f"{float(self.score):.6g}",
            "type": self.type,
            "kept_by_ccf": str(bool(self.kept_by_ccf)).lower(),
        }

    def interval(self) -> Interval:
        """The :class:`~mecg.model.evaluate.Interval` that MEGC evaluation matches."""
        return Interval(self.session, self.onset_frame, self.offset_frame, self.type, self.score, self.apex_frame)
