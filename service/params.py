"""Request parameters as DALI reads them (DALI 1.1 §3.1): names ignore case, values don't.

The query string and the form are merged, keys upper-cased, repeated keys kept in
order (ID, UPLOAD); a single-valued parameter given twice is the caller's error.
"""

from __future__ import annotations

from flask import request

from vo_clip.vo.faults import UsageFault

__all__ = ["Params", "request_params"]


class Params:
    """Case-insensitive, multi-valued request parameters."""

    def __init__(self, pairs):
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key.upper(), []).append(value)

    def __contains__(self, name: str) -> bool:
        return name.upper() in self._values

    def getlist(self, name: str) -> list[str]:
        return list(self._values.get(name.upper(), []))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The single value of ``name``.

        Raises
        ------
        UsageFault
            If the parameter was given more than once with different values.
        """
        values = self._values.get(name.upper())
        if not values:
            return default
        if len(set(values)) > 1:
            raise UsageFault(f"parameter {name.upper()} was given {len(values)} times",
                             "give it once", parameter=name.upper())
        return values[0]

    def single_valued(self) -> dict[str, str]:
        """Each parameter's last value, keyed by its upper-cased name (UWS parameters)."""
        return {key: values[-1] for key, values in self._values.items()}


def request_params() -> Params:
    """The current request's query string and form, merged."""
    pairs = list(request.args.items(multi=True))
    if request.method == "POST":
        pairs += list(request.form.items(multi=True))
    return Params(pairs)
