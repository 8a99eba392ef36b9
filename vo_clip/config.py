"""One configuration object: paths, the model to use, and the service identity.

Values come, each overriding the one before, from the defaults, a TOML file
(``--config FILE`` or ``$VO_CLIP_CONFIG``), ``VO_CLIP_*`` environment variables and the
command-line flags. The result is frozen and passed explicitly, so the same code
serves a laptop and a deployment. Besides this loader, only three things below the
command line read the environment, each for something that is no setting of the
service: where this machine keeps the IVOA schemas that validation needs
(``$VO_CLIP_XSD_DIR``, :func:`vo_clip.vo.xsd.find_schema_dir`), the key of an
OpenAI-compatible summary endpoint (``$VO_CLIP_LLM_API_KEY`` or ``$OPENAI_API_KEY``, a
secret kept out of the settings and their files;
:class:`vo_clip.archive.summarize.OpenAICompatibleBackend`), both overridable by an
argument, and where ``npm ci`` put the search page's browser packages
(``$VO_CLIP_NODE_MODULES``, read on each request by :func:`service.web.node_modules_dir`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping

from .errors import VoClipError
from .vo.limits import TapLimits, UwsLimits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Config", "default_home"]

ENV_PREFIX = "VO_CLIP_"


def default_home(env: Mapping[str, str] = os.environ) -> Path:
    """Where vo_clip keeps what it builds: ``$XDG_CACHE_HOME/vo_clip`` or ``~/.cache/vo_clip``."""
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "vo_clip"


@dataclass(frozen=True)
class Config:
    """Settings of a vo_clip installation.

    Attributes
    ----------
    home : Path
        Directory for built archives and indexes.
    archive : Path, optional
        The archive directory; defaults to the demo archive under ``home``.
    index : Path, optional
        The index directory; defaults to ``home/indexes/<archive directory name>``.
    model : str, optional
        Model spec (see :mod:`vo_clip.ml.model`); defaults to the one the index was
        built with.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    base_url, authority, title : str
        Service identity used in every URL and ivo:// identifier the service writes.
    short_name : str
        The TAP service's short name in the Registry (VOResource 1.1: at most 16
        characters).
    description : str
        What the service offers, for the Registry records' ``content/description``.
    publisher, publisher_url : str
        The organisation publishing the services (its record is ``ivo://{authority}/org``)
        and its home page (default: the service root).
    contact_name, contact_email : str
        Who answers questions about the services (``curation/contact``).
    reference_url : str, optional
        The page documenting the services (default: ``{base_url}/tap``).
    subjects : tuple of str
        Unified Astronomy Thesaurus concepts (http://www.ivoa.net/rdf/uat), as their
        labels, e.g. ``hubble-space-telescope``.
    content_level : tuple of str
        Audiences (http://www.ivoa.net/rdf/voresource/content_level): ``Research``...
    waveband : tuple of str
        Coverage: messengers (http://www.ivoa.net/rdf/messenger), e.g. ``Optical``.
    coverage_spatial : str
        Coverage: an ASCII MOC (VODataService 1.2), e.g. ``0/0-11`` for the whole sky;
        empty to leave it out.
    coverage_temporal : tuple of float
        Coverage: first and last MJD of the observations; empty to leave it out.
    record_created, record_updated : str
        UTC timestamps (``YYYY-MM-DDThh:mm:ssZ``) of the Registry records: when they
        were first published, and when their content last changed (default: when
        this release's records last changed; None means the creation date). Bump
        ``record_updated`` whenever the records change, so harvesters notice.
    oai_page_size : int
        Records per OAI-PMH response page; longer lists continue with resumption tokens.
    threads : int
        Requests the HTTP server answers at once (its worker threads).
    connection_limit, channel_timeout, cleanup_interval : int
        Open connections the server accepts, seconds an idle connection (sending no
        request) is kept, and seconds between two closings of idle connections: idle
        and half-open clients are dropped instead of starving the others.
    wait_max : int
        Cap in seconds of a UWS blocking ``WAIT`` (``WAIT=-1`` means this cap).
    blocking_waits : int, optional
        ``WAIT`` requests blocking at once (default: half the threads); above it a job
        document is answered at once, so waiters never hold every thread.
    proxy_fix : int
        Trusted proxies in front of the service: ``X-Forwarded-*`` headers are honoured
        for this many hops (Werkzeug's ProxyFix); 0 ignores them.
    sync_execution_limit, lookup_time_limit, query_max_length, query_max_nodes, \
query_max_depth, query_max_texts, query_max_similarities, query_max_string_bytes, \
result_max_bytes, image_max_pixels : int
        What one request may cost (see :class:`vo_clip.vo.vosi.TapLimits`).
    job_max_count, job_max_parameters, job_parameter_max_bytes, job_parameters_max_bytes : int
        What the async jobs may hold (see :class:`vo_clip.vo.uws.UwsLimits`).
    postgres_dsn : str, optional
        A PostgreSQL connection string (``postgresql://user@host/db`` or
        ``host=... dbname=...``). When set, the catalog is served from that database
        (PostgreSQL 15 + pgsphere) and the async jobs are kept there, so that several
        ``vo-clip serve`` replicas share them; unset, the embedded SQLite catalog of
        the index is served and jobs are kept under ``home/jobs``.
    postgres_schema : str
        The PostgreSQL schema vo_clip's own tables, views and functions live in.
    """

    home: Path
    archive: Path | None = None
    index: Path | None = None
    model: str | None = None
    device: str = "auto"
    base_url: str | None = None
    authority: str = "example.org"
    title: str = "vo_clip: Hubble observations searched in plain language"
    short_name: str = "vo_clip TAP"
    description: str = (
        "Hubble Space Telescope observations (ObsCore 1.1) searched in plain language: "
        "a CLIP image-text model fine-tuned on HST previews and proposal abstracts "
        "(the PAPERCLIP method) ranks observations by how well their preview matches "
        "a sentence, an image or another observation. ADQL queries call the similarity "
        "functions vo_clip_similarity and vo_clip_similarity_to, and vo_clip_match for a "
        "calibrated probability that a row matches the sentence; every row links through "
        "DataLink to its preview, a FITS product, its proposal and similar observations.")
    publisher: str = "Example Observatory (vo_clip default deployment)"
    publisher_url: str | None = None
    contact_name: str = "vo_clip archive operator"
    contact_email: str = "vo-clip@example.org"
    reference_url: str | None = None
    subjects: tuple[str, ...] = ("hubble-space-telescope", "direct-imaging",
                                 "astronomy-databases", "virtual-observatories")
    content_level: tuple[str, ...] = ("Research",)
    waveband: tuple[str, ...] = ("UV", "Optical", "Infrared")
    coverage_spatial: str = ""
    coverage_temporal: tuple[float, ...] = ()
    record_created: str = "2026-11-22T00:00:00Z"
    record_updated: str | None = "2026-12-07T00:00:00Z"
    oai_page_size: int = 50
    threads: int = 8
    connection_limit: int = 1000
    channel_timeout: int = 30
    cleanup_interval: int = 5
    wait_max: int = 60
    blocking_waits: int | None = None
    proxy_fix: int = 0
    # Limits: the same names, and defaults, as the fields of TapLimits and UwsLimits.
    sync_execution_limit: int = TapLimits.sync_execution_limit
    lookup_time_limit: int = TapLimits.lookup_time_limit
    query_max_length: int = TapLimits.query_max_length
    query_max_nodes: int = TapLimits.query_max_nodes
    query_max_depth: int = TapLimits.query_max_depth
    query_max_texts: int = TapLimits.query_max_texts
    query_max_similarities: int = TapLimits.query_max_similarities
    query_max_string_bytes: int = TapLimits.query_max_string_bytes
    result_max_bytes: int = TapLimits.result_max_bytes
    image_max_pixels: int = TapLimits.image_max_pixels
    job_max_count: int = UwsLimits.job_max_count
    job_max_parameters: int = UwsLimits.job_max_parameters
    job_parameter_max_bytes: int = UwsLimits.job_parameter_max_bytes
    job_parameters_max_bytes: int = UwsLimits.job_parameters_max_bytes
    postgres_dsn: str | None = None
    postgres_schema: str = "vo_clip"

    @property
    def archive_dir(self) -> Path:
        return self.archive or self.home / "demo-archive"

    @property
    def index_dir(self) -> Path:
        return self.index or self.home / "indexes" / self.archive_dir.name

    def tap_limits(self) -> TapLimits:
        """The TAP service's limits, with the values of the settings of the same names."""
        return _limits(TapLimits, self)

    def uws_limits(self) -> UwsLimits:
        """The async job service's limits, with the values of the same-named settings."""
        return _limits(UwsLimits, self)

    @classmethod
    def load(cls, *, file: str | os.PathLike | None = None,
             env: Mapping[str, str] = os.environ, **overrides) -> "Config":
        """Defaults, then the TOML file, then ``VO_CLIP_*`` variables, then ``overrides``.

        Raises
        ------
        VoClipError
            If the file cannot be read or names an unknown setting.
        """
        config = cls(home=default_home(env))
        file = file or env.get(ENV_PREFIX + "CONFIG")
        if file:
            config = config.updated(_read_toml(Path(file)), origin=str(file))
        from_env = {f.name: env[ENV_PREFIX + f.name.upper()] for f in fields(cls)
                    if ENV_PREFIX + f.name.upper() in env}
        config = config.updated(from_env, origin="the environment")
        return config.updated({k: v for k, v in overrides.items() if v is not None},
                              origin="the command line")

    def updated(self, values: Mapping[str, object], *, origin: str) -> "Config":
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise VoClipError(f"unknown setting(s) {', '.join(unknown)} in {origin}",
                              hint=f"known settings: {', '.join(sorted(known))}")
        return replace(self, **{k: _coerce(k, v) for k, v in values.items()})


#: Settings that hold a list: a TOML array, or a comma-separated string (environment).
_LISTS = {"subjects": str, "content_level": str, "waveband": str, "coverage_temporal": float}
_PATHS = {"home", "archive", "index"}
#: Settings that hold a whole number: ≥ 0 for these, ≥ 1 for those in _POSITIVE (the
#: limits of one request or job among them).
_INTS = {"oai_page_size", "threads", "connection_limit", "channel_timeout",
         "cleanup_interval", "wait_max", "blocking_waits", "proxy_fix"}
_POSITIVE = {"oai_page_size", "threads", "connection_limit", "channel_timeout",
             "cleanup_interval", "blocking_waits"} | (
    {f.name for f in fields(TapLimits)} & {f.name for f in fields(Config)}) | (
    {f.name for f in fields(UwsLimits)} & {f.name for f in fields(Config)}) - {"wait_max"}
_INTS |= _POSITIVE


def _limits(kind, config: Config):
    return kind(**{f.name: getattr(config, f.name) for f in fields(kind)
                   if getattr(config, f.name, None) is not None})


def _coerce(name: str, value: object) -> object:
    """``value`` as the type setting ``name`` holds (environment values are strings).

    Raises
    ------
    VoClipError
        If a number or a list of numbers cannot be read.
    """
    try:
        if name in _PATHS:
            return Path(str(value)).expanduser()
        if name in _LISTS:
            items = value.split(",") if isinstance(value, str) else value
            return tuple(_LISTS[name](str(item).strip()) for item in items if str(item).strip())
        if name in _INTS and value is not None:
            number = int(value)
            if (isinstance(value, float) and value != number
                    or number < (1 if name in _POSITIVE else 0)):
                raise ValueError(value)
            return number
    except (TypeError, ValueError):
        raise VoClipError(f"setting {name} cannot be {value!r}",
                          "it takes a positive integer" if name in _POSITIVE
                          else "it takes a whole number, 0 or more" if name in _INTS
                          else None) from None
    return value


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise VoClipError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise VoClipError(f"configuration file {path} is not valid TOML: {exc}") from exc
    return data.get("vo_clip", data)
