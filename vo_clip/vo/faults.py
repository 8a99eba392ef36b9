"""Faults as the VO standards name them (DALI 1.1 §4.4, DataLink 1.1 §3.4).

Every error the VO layer raises is one of these: the message says what is wrong and
names the offending value; ``status`` is the HTTP status a synchronous endpoint answers
with; ``parameter`` names the request parameter at fault, when one is. The service
renders them at its edge, as a VOTable error document (QUERY_STATUS=ERROR), a DataLink
error row, or on the UWS job resources a text/plain line (:meth:`DALIFault.vo_text`
is the ``Fault: detail`` text DataLink and UWS ask for).

A fault raised because a configured limit was reached names that limit's setting in
``limit`` (None otherwise), so refusals can be counted per limit and the message can
tell the operator which setting to change.
"""

from __future__ import annotations

from ..errors import VoClipError

__all__ = [
    "DALIFault",
    "FatalFault",
    "LimitFault",
    "NotFoundFault",
    "TransientFault",
    "UsageFault",
]


class DALIFault(VoClipError):
    """Base of the VO faults; ``status`` is the HTTP status for a synchronous request."""

    status = 400

    def __init__(self, message: str, hint: str | None = None, *, parameter: str | None = None,
                 limit: str | None = None):
        super().__init__(message, hint)
        self.parameter = parameter
        self.limit = limit

    @property
    def fault_name(self) -> str:
        return type(self).__name__

    def vo_text(self) -> str:
        """``Fault: message`` (DataLink error_message and UWS error summaries)."""
        return f"{self.fault_name}: {self}"


class UsageFault(DALIFault):
    """The request is wrong: a bad parameter, an ADQL syntax error, an unknown column."""

    status = 400


class LimitFault(UsageFault):
    """The request asks for more than a configured limit allows.

    ``limit`` is required: the name of the setting (``vo_clip.config.Config``) that
    holds the limit, which the message names too.
    """

    def __init__(self, message: str, hint: str | None = None, *, limit: str,
                 parameter: str | None = None):
        super().__init__(message, hint, parameter=parameter, limit=limit)


class NotFoundFault(DALIFault):
    """What the request names does not exist (an observation, a job, a table)."""

    status = 404


class TransientFault(DALIFault):
    """The service cannot answer now but may later (time limit, overload, index rebuilt)."""

    status = 503


class FatalFault(DALIFault):
    """The service failed; the request may have been fine."""

    status = 500
