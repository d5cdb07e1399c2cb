"""Logging filters for the settings' LOGGING."""

from __future__ import annotations

import logging


class ClientErrorsOnOneLine(logging.Filter):
    """A 4xx answer (403 for a viewer's POST, 404 for a stranger) is the caller's mistake, not the site's:
    log it as its one line ("Forbidden (Permission denied): /projects/3/delete/") without the traceback
    Django attaches. 5xx records keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
