"""Other formats in and out: LabRecorder XDF recordings into sessions, sessions out to NWB.

Talks to the rest of mecg only through :mod:`mecg.session`. See docs/interop.md.
"""

from mecg.interop.xdf_import import XdfImportReport, import_xdf
from mecg.interop.xdf_scan import XdfError, XdfScan, XdfTruncatedError, scan_xdf

__all__ = ["XdfError", "XdfImportReport", "XdfScan", "XdfTruncatedError", "import_xdf", "scan_xdf"]
