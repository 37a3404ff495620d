"""Session recording: crash-safe writer and reader, recorder process, reprocessing, export.

Format: docs/session-format.md.  :class:`SessionWriter` is the one writer the
recorder process, the engine and the viewer's record button share.
"""

from lorentz_live.record.reader import SessionReader
from lorentz_live.record.writer import RecordError, SessionWriter

__all__ = ["RecordError", "SessionReader", "SessionWriter"]
