"""HST observing cycles on the calendar.

The demo needs one rule, shared by the generator and its tests, for which dates belong
to which cycle: cycle 1 opens at the start of 1991 and every cycle lasts a little over a
year, so cycle 32 opens in 2024 as the real one did. Dates are Modified Julian Dates,
the time scale of the ObsCore ``t_min``/``t_max`` columns.
"""

from __future__ import annotations

__all__ = ["CYCLES", "cycle_mjd_range", "cycle_year_range"]

#: The observing cycles the demo archive draws from.
CYCLES = range(1, 33)

_FIRST_YEAR = 1991.0
_CYCLE_YEARS = 1.07
_MJD_1991 = 48257.0  # 1991-01-01T00:00 UTC
_DAYS_PER_YEAR = 365.25


def cycle_year_range(cycle: int) -> tuple[float, float]:
    """Decimal years (start, end) of ``cycle``."""
    if cycle not in CYCLES:
        raise ValueError(f"HST cycle {cycle} is outside {CYCLES.start}..{CYCLES.stop - 1}")
    start = _FIRST_YEAR + (cycle - 1) * _CYCLE_YEARS
    return start, start + _CYCLE_YEARS


def cycle_mjd_range(cycle: int) -> tuple[float, float]:
    """MJD (start, end) of ``cycle``: every observation of the cycle lies inside."""
    start, end = cycle_year_range(cycle)
    return (_MJD_1991 + (start - _FIRST_YEAR) * _DAYS_PER_YEAR,
            _MJD_1991 + (end - _FIRST_YEAR) * _DAYS_PER_YEAR)
