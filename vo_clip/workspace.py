"""What a configuration points at, made ready: the archive, its index, and the model.

The embedded default needs no set-up: when the configuration names no archive, the
demo archive is generated under ``home`` on first use, indexed with the demo model,
and reused afterwards. An archive of one's own is never built implicitly; its index
is made with ``vo-clip index``. The command line and the service both start here.
"""

from __future__ import annotations

import os

from .config import Config
from .errors import IndexMissingError

__all__ = ["ensure_demo_archive", "ensure_index", "model_spec", "open_engine", "open_tap"]


def model_spec(config: Config, index=None) -> str:
    """The model to use: configured, else the index's own, else the demo model."""
    from .ml.demo_model import DEMO_SPEC

    if config.model:
        return config.model
    if index is not None and index.manifest.model.get("spec"):
        return index.manifest.model["spec"]
    return DEMO_SPEC


def _silent(message: str) -> None:
    """The default ``notify``: libraries do not print."""


def ensure_demo_archive(config: Config, *, progress: bool = True, notify=_silent):
    """The configured archive, generating the demo archive if it is the default.

    ``notify`` receives one-line messages about slow first-use steps. What a killed
    build of the default archive left beside it is removed here, on every start.
    """
    from .archive import Archive
    from .archive.archive import OBSERVATIONS_FILE

    if config.archive is None:
        from .archive.demo import remove_abandoned_builds

        for path in remove_abandoned_builds(config.archive_dir):
            notify(f"removed {path}, left by an interrupted build of the demo archive")
    if config.archive is None and not (config.archive_dir / OBSERVATIONS_FILE).is_file():
        from .archive.demo import build_demo_archive
        from .archive.demo.generator import estimated_build_seconds

        minutes = max(1, round(estimated_build_seconds() / 60))
        notify(f"first use: generating the demo archive in {config.archive_dir}, once: "
               f"3,000 previews, about {minutes} min on {os.cpu_count()} idle cores "
               "(longer while they are busy), then indexing them")
        return build_demo_archive(config.archive_dir, progress=progress)
    return Archive.open(config.archive_dir)


def ensure_index(config: Config, *, model=None, progress: bool = True, notify=_silent):
    """The configured index, building the default one (demo archive + model) if absent.

    The default index follows its inputs: regenerating the demo archive, or retraining
    the demo model (``model``, when given, is the one about to be used), brings it up
    to date on next use, re-embedding only what changed. An index of the user's own is
    never rebuilt implicitly.

    Raises
    ------
    IndexMissingError
        If an index of the user's own is missing: building it is their call.
    """
    return _bring_up_to_date(config, _open_or_none(config), model, progress, notify)


def _open_or_none(config: Config):
    """The configured index, or None when the default one does not exist yet."""
    from .search.index import EmbeddingIndex

    try:
        return EmbeddingIndex.open(config.index_dir)
    except IndexMissingError:
        if config.index is not None or config.archive is not None:
            raise  # an index of the user's own: building it is their call
        return None


def _bring_up_to_date(config: Config, index, model, progress: bool, notify):
    from .search.index import build_index

    if index is not None and _current(config, index, model):
        return index
    archive = ensure_demo_archive(config, progress=progress, notify=notify)
    if model is None:
        from .ml.model import load_model

        model = load_model(model_spec(config), device=config.device)
    reason = ("first use" if index is None else
              "the demo index has no match calibration yet" if index.moments is None else
              "the demo archive or model changed")
    notify(f"{reason}: indexing {len(archive)} previews with {model.card.name} into "
           f"{config.index_dir}")
    return build_index(archive, model, config.index_dir, rebuild=index is not None
                       and index.manifest.model_fingerprint != model.fingerprint,
                       progress=progress).index


def _current(config: Config, index, model) -> bool:
    """Whether ``index`` can answer as it is: an index of the user's own always can."""
    default = config.index is None and config.archive is None
    return not default or _up_to_date(index, config, model)


def _up_to_date(index, config: Config, model) -> bool:
    """Same model, same observations table (hashed, not parsed: this runs per query),
    and the score moments an index has had since match probabilities."""
    from .archive.archive import OBSERVATIONS_FILE
    from .hashing import sha256_file

    if model is not None and index.manifest.model_fingerprint != model.fingerprint:
        return False
    if index.moments is None:  # built before them: re-indexing reuses every vector
        return False
    try:
        current = sha256_file(config.archive_dir / OBSERVATIONS_FILE)
    except OSError:
        return True  # the archive went away; the index still answers on its own
    return index.manifest.archive.get("fingerprint") == current


def open_engine(config: Config, *, with_model: bool = True, text_only: bool = False,
                progress: bool = True, notify=_silent):
    """A search engine over the configured index, with its model unless not needed.

    ``text_only`` says the engine will only embed texts: then, if the model's text tower
    has a form that needs no open_clip (see :mod:`vo_clip.ml.text_query`) and the index
    is current, only that is loaded, in numpy: a new ``vo-clip query`` process then
    imports neither open_clip nor torch, which makes it several times quicker to start,
    with the same vectors to float32 rounding (1e-5 per component, tested).
    """
    from .search.engine import SearchEngine

    index = _open_or_none(config)  # opened once: it names the model and is searched
    model = None
    if with_model:
        spec = model_spec(config, index)
        if text_only and index is not None:
            from .ml.text_query import load_text_encoder

            encoder = load_text_encoder(spec, device=config.device, trim=True,
                                        backend="numpy")
            if encoder is not None and _current(config, index, encoder):
                return SearchEngine(index, encoder)
        from .ml.model import load_model

        model = load_model(spec, device=config.device)
    return SearchEngine(_bring_up_to_date(config, index, model, progress, notify), model)


def open_tap(config: Config):
    """The TAP service over the configured index; the model loads on first use.

    Raises
    ------
    IndexMissingError
        If the index does not exist (``vo-clip serve`` builds the default one first).
    """
    import threading

    from .search.engine import SearchEngine
    from .search.index import EmbeddingIndex
    from .vo.tap import TapService

    index = EmbeddingIndex.open(config.index_dir)
    lock, engines = threading.Lock(), []

    def engine() -> SearchEngine:
        with lock:
            if not engines:
                from .ml.model import load_model
                from .ml.text_query import text_encoder_of

                model = load_model(model_spec(config, index), device=config.device)
                # float32, not bfloat16: bf16 products (text_encoder_of(bf16=True), 1.6x
                # quicker) move scores by up to ~0.006, enough to reorder a top 10 whose
                # neighbours are 0.001 apart, and TAP must rank as `vo-clip query` does.
                # ONNX Runtime runs the same float32 pass quicker than torch on the CPU
                # (benchmarks/query_latency.py); torch where onnxruntime is missing
                encoder = (text_encoder_of(model, backend="onnx")
                           or text_encoder_of(model, backend="torch"))
                engines.append(SearchEngine(index, model, text_encoder=encoder))
            return engines[0]

    return TapService(index, authority=config.authority, engine=engine,
                      limits=config.tap_limits(), catalog=catalog_backend(config, index))


def catalog_backend(config: Config, index):
    """How the TAP service opens its catalog: PostgreSQL when ``postgres_dsn`` is set
    (loaded by ``vo-clip postgres load``), else None, the index's own SQLite catalog."""
    if not config.postgres_dsn:
        return None

    def open_postgres(tables, tap_schema_rows):
        from .search.backends.postgres import PostgresBackend

        return PostgresBackend(config.postgres_dsn, schema=config.postgres_schema,
                               authority=config.authority, tables=tables,
                               tap_schema_rows=tap_schema_rows,
                               string_max_bytes=config.query_max_string_bytes,
                               expected_rows=len(index))

    return open_postgres
