"""What every pyvo example script shares: the default service URL, ADQL string quoting
and one-line error messages (the scripts import it from their own directory)."""

from __future__ import annotations

import requests

__all__ = ["DEFAULT_URL", "adql_string", "one_line"]

DEFAULT_URL = "http://127.0.0.1:8000/tap"


def adql_string(text: str) -> str:
    """``text`` as an ADQL string literal (quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def one_line(error: Exception, url: str, what: str = "TAP service") -> str:
    """What went wrong, in one line; an unreachable service says how to start it."""
    if isinstance(getattr(error, "cause", error), requests.ConnectionError):
        return f"cannot reach the {what} at {url} (is `vo-clip serve` running?)"
    return " ".join(str(error).split())
