"""Whether the client of the current request is still there to read the answer.

A sync query whose client hung up (a closed TOPCAT window, a killed script, an
abuser opening queries and dropping them) would otherwise run to its time limit on a
request thread. Waitress reports the hang-up through ``waitress.client_disconnected``
in the WSGI environment (see ``service.server``); the query's ``cancelled`` callback
asks it, from SQLite's progress handler, so the query stops within a moment.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from flask import request

__all__ = ["client_gone"]

log = logging.getLogger(__name__)

#: Seconds between two looks at the connection (the progress handler calls far more often).
_LOOK_EVERY_S = 0.1


def client_gone() -> Callable[[], bool]:
    """A callable that turns True once the current request's client has disconnected.

    Under a server that cannot tell (Flask's test client, another WSGI server) it is
    always False. It remembers the answer and logs the stop once, at INFO.
    """
    disconnected = request.environ.get("waitress.client_disconnected")
    if disconnected is None:
        return lambda: False
    path, state = request.path, {"next": 0.0, "gone": False}

    def gone() -> bool:
        if state["gone"]:
            return True
        now = time.monotonic()
        if now >= state["next"]:
            state["next"] = now + _LOOK_EVERY_S
            if disconnected():
                state["gone"] = True
                log.info("the client of %s disconnected: its query is stopped", path)
        return state["gone"]

    return gone
