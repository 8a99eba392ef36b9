"""How long each stage of a request took, handed to whoever counts.

The library times its stages (``translate``, ``encode``, ``score``, ``sql``, ``render``)
but does not decide where the numbers go: the caller passes a *recorder*, any callable
taking the stage name and the seconds it took. The service turns them into Prometheus
histograms; the library imports no metrics package, and a caller that does not care
passes nothing.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

__all__ = ["StageClock", "StageRecorder"]

#: ``recorder(stage, seconds)``: called once each time a stage ends.
StageRecorder = Callable[[str, float], None]


class StageClock:
    """The stages of one request: kept in ``timings`` (seconds, summed per stage) and
    reported to the recorder as each one ends, failed or not (a query stopped by its
    time limit spent that time in SQL all the same)."""

    def __init__(self, recorder: StageRecorder | None = None):
        self.timings: dict[str, float] = {}
        self._recorder = recorder

    def add(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds
        if self._recorder is not None:
            self._recorder(stage, seconds)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def timed_chunks(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks``, timing only their making: a streamed document is written while
        the server sends it, and the time spent waiting on a slow client is not ours."""
        iterator = iter(chunks)
        spent = 0.0
        try:
            while True:
                started = time.perf_counter()
                try:
                    chunk = next(iterator)
                except StopIteration:
                    spent += time.perf_counter() - started
                    return
                spent += time.perf_counter() - started
                yield chunk
        finally:  # also when the client went away and the server closed the stream
            self.add(name, spent)
