"""Latency per stage of the sync queries (encode, score, sql, total), kept in memory.

Registered by the application factory, not at import, so each app counts its own
requests; ``/metrics`` reports the median and 95th percentile of the recent ones.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque

__all__ = ["StageLatencies"]


class StageLatencies:
    """The last ``window`` durations of each stage, in seconds."""

    def __init__(self, window: int = 1000):
        self._samples: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))
        self._lock = threading.Lock()

    def observe(self, timings: dict[str, float]) -> None:
        with self._lock:
            for stage, seconds in timings.items():
                self._samples[stage].append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage: count, p50 and p95 in milliseconds."""
        with self._lock:
            samples = {stage: sorted(values) for stage, values in self._samples.items()}
        return {stage: {"count": len(values),
                        "p50_ms": round(1000 * values[len(values) // 2], 3),
                        "p95_ms": round(1000 * values[int(0.95 * (len(values) - 1))], 3)}
                for stage, values in samples.items() if values}
