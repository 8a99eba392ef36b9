"""What one request may cost: the TAP service's limits and the job service's.

They are settings (:class:`vo_clip.config.Config` builds both), so they live apart from
the protocol modules that enforce them: reading the configuration, as every ``vo-clip``
command does first, then needs no XML, SQL or table machinery (the VOSI module's
imports reach astropy, ~0.7 s of a new ``vo-clip query`` process).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TapLimits", "UwsLimits"]


@dataclass(frozen=True)
class TapLimits:
    """Limits of the TAP service: the capability declares the first six (TAPRegExt 1.0
    §2.4; rows and seconds), the service enforces them all.

    The others bound what one request may cost; each has the name of the setting that
    configures it (:class:`vo_clip.config.Config`), and a refusal names it.

    Attributes
    ----------
    sync_execution_limit : int
        Seconds a synchronous query may run (async queries run for their job's
        execution duration).
    lookup_time_limit : int
        Seconds one catalog lookup (DataLink, previews, products, proposal pages) may
        run; each lookup gets its own.
    query_max_length : int
        Characters in an ADQL query.
    query_max_nodes : int
        Nodes of the parsed query (``*`` counted as the columns it stands for).
    query_max_depth : int
        Nesting depth of the parsed query (a chain of N ORs is N deep).
    query_max_texts : int
        Distinct texts one query compares with (each is embedded by the model).
    query_max_similarities : int
        Similarity calls in one query (each scores every row).
    query_max_string_bytes : int
        Bytes of one string value SQL may build (SQLite ``SQLITE_LIMIT_LENGTH``).
    result_max_bytes : int
        Estimated size of one result (its TABLEDATA serialization).
    image_max_pixels : int
        Pixels of an uploaded query image, checked before it is decoded.
    """

    default_maxrec: int = 10000
    hard_maxrec: int = 100000
    retention_default: int = 86400
    retention_hard: int = 604800
    execution_default: int = 600
    execution_hard: int = 3600
    sync_execution_limit: int = 60
    lookup_time_limit: int = 10
    query_max_length: int = 100_000
    query_max_nodes: int = 10_000
    query_max_depth: int = 250
    query_max_texts: int = 10
    query_max_similarities: int = 50
    query_max_string_bytes: int = 1_000_000
    result_max_bytes: int = 64 * 1024 * 1024
    image_max_pixels: int = 40_000_000


@dataclass(frozen=True)
class UwsLimits:
    """Limits of the job service: times in seconds, and what the jobs may hold.

    Attributes
    ----------
    execution_default, execution_max : int
        Execution duration of a new job, and the most a client may ask for (0, UWS's
        "unlimited", is granted as ``execution_max``).
    destruction_default, destruction_max : int
        Lifetime of a job after its creation, by default and at most.
    wait_max : int
        Cap of a blocking ``WAIT`` (``WAIT=-1`` means this cap).
    blocking_waits : int
        ``WAIT`` requests allowed to block at once; further ones return at once.
    job_max_count : int
        Jobs stored at once (until their destruction); a new one beyond is refused.
    job_max_parameters : int
        Parameters of one job.
    job_parameter_max_bytes, job_parameters_max_bytes : int
        UTF-8 bytes of one parameter's value, and of all of a job's names and values.
    """

    execution_default: int = 600
    execution_max: int = 3600
    destruction_default: int = 86400
    destruction_max: int = 7 * 86400
    wait_max: int = 60
    blocking_waits: int = 4
    job_max_count: int = 1000
    job_max_parameters: int = 64
    job_parameter_max_bytes: int = 128 * 1024
    job_parameters_max_bytes: int = 256 * 1024
