"""How torch's OpenMP threads wait for work, and so how many a text query may use.

A query's text encoding is ~50 small matrix products and as many small operations
around them. With OpenMP's default policy a thread that has finished its share spins
until the next one is handed out; when the other core is busy, each operation then
waits for a thread the scheduler has not run. Measured on the 2-core AMD EPYC with the
demo model's packed encoder (:mod:`vo_clip.ml.text_query`), medians of 20 queries:
two spinning threads 40-45 ms idle but 116-187 ms beside one busy loop and 176-416 ms
beside two, one thread 65-71 / 71 / 110-112 ms. Under ``OMP_WAIT_POLICY=PASSIVE``
waiting threads sleep instead: two threads 46-52 / 63 / 65-114 ms, one 56-69 / 58-63 /
108-113 ms. OpenMP reads the policy once, when torch loads it, so a process can choose
it only before it imports torch: ``vo-clip serve`` does.
"""

from __future__ import annotations

import os
import sys

__all__ = ["few_text_threads", "sleep_while_waiting"]

#: Threads a query's few texts use when waiting threads sleep; more were not measured.
_PASSIVE_QUERY_THREADS = 2


def sleep_while_waiting() -> bool:
    """Ask OpenMP to put waiting threads to sleep, unless the environment says otherwise.

    Returns whether the policy in force is the passive one. Once torch is imported the
    choice is made and this only reports it.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return _passive()


def few_text_threads(available: int) -> int:
    """Intra-op threads for a query's few texts, of the ``available`` ones: one, unless
    OpenMP's waiting threads sleep."""
    return max(1, min(available, _PASSIVE_QUERY_THREADS)) if _passive() else 1


def _passive() -> bool:
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"
