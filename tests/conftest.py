"""Shared fixtures: a tiny archive and a tiny random model, both made by the tests.

Nothing here reaches the network: the hub clients are switched to offline mode before
any test imports them, so a code path that tried to download would fail loudly.
"""

from __future__ import annotations

import os
import secrets

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import gc  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy.table import Table  # noqa: E402
from PIL import Image  # noqa: E402

#: A CLIP small enough to train and embed in milliseconds, with the real CLIP tokenizer.
TINY_ARCHITECTURE = {
    "embed_dim": 32,
    "quick_gelu": False,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

INSTRUMENTS = ["ACS/WFC", "WFC3/UVIS", "WFC3/IR", "STIS/CCD"]


#: The catalog backends a TAP test runs on; the PostgreSQL one is marked ``postgres``.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def write_tiny_archive(root: Path, n: int = 36, seed: int = 0):
    """An archive of ``n`` distinct 48-px previews with a few ObsCore columns."""
    from vo_clip.archive import Archive

    rng = np.random.default_rng(seed)
    (root / "previews").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:48, 0:48]
    rows = []
    for i in range(n):
        cx, cy, width = rng.uniform(8, 40), rng.uniform(8, 40), rng.uniform(2, 12)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width ** 2))
        pixels = np.clip(255 * (0.7 * blob + 0.3 * rng.random((48, 48))), 0, 255)
        preview = f"previews/obs{i:03d}.png"
        Image.fromarray(pixels.astype(np.uint8), mode="L").save(root / preview)
        rows.append((f"obs{i:03d}", preview, f"TARGET-{i % 7}", INSTRUMENTS[i % 4],
                     float(10 + i), float(-30 + i / 2), int(10 + i % 20), "TINY", 2,
                     f"{9000 + i % 6}", f"Tiny programme {i % 6} & <friends>"))
    table = Table(rows=rows, names=["obs_id", "preview", "target_name", "instrument_name",
                                    "s_ra", "s_dec", "proposal_cycle", "obs_collection",
                                    "calib_level", "proposal_id", "proposal_title"])
    return Archive.write(root, table, name="tiny", source="tests")


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory):
    return write_tiny_archive(tmp_path_factory.mktemp("tiny-archive"))


#: pyvo 1.9's AsyncTAPJob and DataLink processing leave streamed HTTP responses (client
#: sockets) to the garbage collector, which reports them: the client's leak, not ours.
IGNORE_PYVO_SOCKET_LEAK = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def service(server):
    """A pyvo TAPService on the module's ``server`` fixture, over one HTTP session."""
    import pyvo
    import requests

    with requests.Session() as session:
        yield pyvo.dal.TAPService(server + "/tap", session=session)


@pytest.fixture(scope="module", autouse=True)
def collect_garbage_per_module():
    """Collect garbage when each module ends, under that module's warning filters.

    An object a module leaks (an unclosed socket) would otherwise be finalised, and its
    ResourceWarning raised, during whichever later test the garbage collector happens to
    run in: the failure would be random and blamed on the wrong module.
    """
    yield
    gc.collect()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    from vo_clip.ml.model import create_model

    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    create_model(TINY_ARCHITECTURE, seed=0, name="tiny test model").save(
        path, training_data={"archive": "none: random weights"})
    return path


@pytest.fixture(scope="session")
def other_model_path(tmp_path_factory) -> Path:
    from vo_clip.ml.model import create_model

    path = tmp_path_factory.mktemp("models") / "other.safetensors"
    create_model(TINY_ARCHITECTURE, seed=1, name="another model").save(path)
    return path


def run_cli(*args: str, home: Path, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``vo-clip ARGS`` as a user would: a separate process, a private home."""
    env = {**os.environ, "VO_CLIP_HOME": str(home)}
    env.pop("VO_CLIP_CONFIG", None)
    result = subprocess.run([sys.executable, "-m", "vo_clip", *args], capture_output=True,
                            text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"vo-clip {' '.join(args)} failed:\n{result.stderr}")
    return result


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """A failed command said what went wrong in one line (plus a hint), no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("vo-clip: error:")]
    assert len(errors) == 1, result.stderr
    assert all(line.startswith(("vo-clip: error:", "vo-clip: hint:")) for line in lines), lines
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture(scope="session")
def tiny_index(tiny_archive, tiny_model_path, tmp_path_factory) -> Path:
    """The tiny archive indexed with the tiny model (a directory)."""
    from vo_clip.ml.model import load_model
    from vo_clip.search.index import build_index

    out = tmp_path_factory.mktemp("tiny-index") / "index"
    build_index(tiny_archive, load_model(str(tiny_model_path)), out, progress=False)
    return out


@contextmanager
def live_server(app, threads: int | None = None):
    """Serve ``app`` on a free loopback port as `vo-clip serve` does; yields the base URL.

    The server's options come from the app's configuration (see ``service.server``);
    ``threads`` replaces its ``threads`` setting.
    """
    from service.app import close_app
    from service.server import create_server

    config = app.extensions["vo_clip.config"]
    server = create_server(app, config, host="127.0.0.1", port=0,
                           threads=threads or config.threads, ident="vo_clip/test")
    stopping = threading.Event()

    def serve():
        try:
            server.run()
        except (OSError, ValueError):
            # waitress has no stop(): closing its sockets under the running loop can
            # fail in select(); that is the shutdown we asked for, anything else is not.
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stopping.set()
        server.task_dispatcher.shutdown()  # let running requests finish first
        server.close()
        thread.join(timeout=10)
        close_app(app)


def taplint(tap_url: str, stages: str = "-LOC") -> tuple[list[str], str]:
    """Run STILTS taplint; the report lines of errors (E-) and warnings (W-), and the text."""
    result = subprocess.run(["stilts", "taplint", f"tapurl={tap_url}", f"stages={stages}",
                             "report=EWF", "maxrepeat=5"], capture_output=True, text=True,
                            timeout=600)
    text = result.stdout + result.stderr
    assert "Totals:" in text, text
    return [line for line in text.splitlines() if line.startswith(("E-", "W-"))], text


#: Every skip for a tool the machine lacks starts with this, so that CI can tell it apart.
MISSING_TOOL = "missing tool: "

#: Under CI (``CI=true``, as .ci/run runs) a missing tool is a failure: a green run must
#: mean that the validators, the browser and the schemas really ran.
ON_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_tool(what: str) -> str:
    """The reason of a skip for a missing tool: ``what`` says what and how to install it."""
    return MISSING_TOOL + what


def _fail_missing_tools_on_ci(report) -> None:
    if ON_CI and report.skipped and MISSING_TOOL in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"CI=true, so this is a failure, not a skip: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_missing_tools_on_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_missing_tools_on_ci(outcome.get_result())


requires_stilts = pytest.mark.skipif(
    shutil.which("stilts") is None, reason=missing_tool("STILTS (apt-get install stilts)"))


#: The query a new user runs first (tests/test_default_flow.py, tests/test_tap_demo.py).
FIRST_QUERY = "planetary nebula with a bright central star"


@pytest.fixture(scope="session")
def demo_first_run(tmp_path_factory):
    """A new user's first `vo-clip query`: it builds the full demo archive and index.

    Session-scoped: the demo build takes minutes, and every slow test reads the same one.
    """
    home = tmp_path_factory.mktemp("new-user")
    # Generating 3,000 previews and embedding them takes 3-5 minutes on 2 busy cores.
    result = run_cli("query", FIRST_QUERY, "--top", "10", "--format", "csv", home=home,
                     timeout=1200)
    return home, result


@pytest.fixture(scope="module", params=BACKENDS)
def tiny_server(request, tiny_index, tiny_model_path, tmp_path_factory):
    """A live service on the tiny index (its own home: jobs do not leak between modules),
    once on each catalog backend: the modules using it run on SQLite and PostgreSQL."""
    from vo_clip.config import Config

    home = tmp_path_factory.mktemp("service-home")
    config = Config(home=home, index=tiny_index, model=str(tiny_model_path))
    with server_on_backend(request, request.param, config) as url:
        yield url


# -- PostgreSQL (tests marked ``postgres``; see tests/postgres_cluster.py) -------------

@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server: a throwaway cluster, or VO_CLIP_TEST_POSTGRES_DSN.

    Skips as a missing tool (a failure under CI) when PostgreSQL, pgsphere or psycopg
    is not installed.
    """
    import postgres_cluster  # here, not at the top: test_ci_rules copies this file alone

    try:
        with postgres_cluster.postgres_server() as server:
            yield server
    except postgres_cluster.MissingTool as missing:
        pytest.skip(missing_tool(str(missing)))


@pytest.fixture
def postgres_database(postgres_server):
    """A fresh empty database with pg_sphere, dropped after the test (name, dsn, server)."""
    with postgres_server.database() as database:
        yield database


@pytest.fixture
def postgres_dsn(postgres_database) -> str:
    """The connection string of this test's own fresh database."""
    return postgres_database.dsn


@contextmanager
def postgres_catalog(request, index_root) -> Iterator[str]:
    """The catalog of ``index_root`` loaded into a fresh database of the session's
    server, as ``vo-clip postgres load`` does: yields the DSN of a login role that holds
    only the read-only service role, as a deployment's service connects."""
    import psycopg

    from vo_clip.search.backends.postgres_load import load_catalog
    from vo_clip.search.index import CATALOG
    from vo_clip.vo.schema import published_tables
    from vo_clip.vo.tap_schema import tap_schema_rows

    server = request.getfixturevalue("postgres_server")
    with server.database() as database:
        login, password = f"{database.name}_svc", secrets.token_hex(8)
        server.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{password}'")
        try:
            tables = published_tables()
            load_catalog(database.dsn, Path(index_root) / CATALOG, tables=tables,
                         tap_schema_rows=tap_schema_rows(tables), grant=[login],
                         progress=False)
            yield psycopg.conninfo.make_conninfo(database.dsn, user=login, password=password)
        finally:
            server.drop_database(database.name)
            server.execute(f"DROP ROLE IF EXISTS {login}")


@contextmanager
def tap_on_backend(request, backend: str, index_root, **service):
    """A TapService over ``index_root`` on ``backend`` (``sqlite`` or ``postgres``)."""
    from vo_clip.search.index import EmbeddingIndex
    from vo_clip.vo.tap import TapService

    index = EmbeddingIndex.open(index_root)
    if backend == "sqlite":
        yield TapService(index, **service)
        return
    from vo_clip.search.backends.postgres import PostgresBackend

    with postgres_catalog(request, index_root) as dsn:
        tap = TapService(index, catalog=lambda t, r: PostgresBackend(
            dsn, authority=service.get("authority", "example.org"), tables=t,
            tap_schema_rows=r, expected_rows=len(index)), **service)
        try:
            yield tap
        finally:
            tap.catalog.close()


@contextmanager
def server_on_backend(request, backend: str, config) -> Iterator[str]:
    """A live service for ``config`` (a Config) on ``backend``: with ``postgres``, its
    catalog and its async jobs are in PostgreSQL (``postgres_dsn``)."""
    from dataclasses import replace

    from service import create_app

    if backend == "sqlite":
        with live_server(create_app(config)) as url:
            yield url
        return
    with postgres_catalog(request, config.index_dir) as dsn:
        with live_server(create_app(replace(config, postgres_dsn=dsn))) as url:
            yield url
