"""Every script in examples/ runs, as a user runs it, against a live local server.

Each script is a separate process given the server's TAP URL; the tests read what it
prints (the rows of its table, the job's phases, the DataLink links) and its exit
status. samp_send.py talks to a SAMP hub and a receiving client started here, on the
loopback interface only.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from astropy.io.votable import parse_single_table

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: The scripts that talk to the TAP service (search_from_python.py opens the index itself).
TAP_SCRIPTS = ["text_search.py", "similar_to.py", "cone_and_text.py", "async_job.py",
               "datalink_followup.py", "samp_send.py"]


@pytest.fixture(scope="module")
def server(tiny_server):
    return tiny_server


@pytest.fixture(scope="module")
def tap(server):
    return server + "/tap"


def run_example(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python examples/SCRIPT ARGS``; ``env`` adds variables (None removes one)."""
    environ = {**os.environ, **(env or {})}
    environ = {name: value for name, value in environ.items() if value is not None}
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=300, env=environ)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def printed_table(text: str, first_column: str, start: int = 0) -> list[dict]:
    """The rows of the first astropy-printed table whose first column is ``first_column``
    (at or after line ``start``), as dicts of stripped strings."""
    lines = text.splitlines()
    for at in range(start, len(lines)):
        dashes = lines[at]
        if not dashes.strip() or set(dashes.strip()) - {"-", " "}:
            continue
        spans, column = [], 0
        for run in dashes.split(" "):
            if run:
                spans.append((column, column + len(run)))
            column += len(run) + 1
        header = next((lines[i] for i in (at - 1, at - 2)
                       if i >= 0 and lines[i][slice(*spans[0])].strip() == first_column), None)
        if header is None:
            continue
        names = [header[a:b].strip() for a, b in spans]
        rows = []
        for line in lines[at + 1:]:
            if len(line.rstrip()) != len(dashes.rstrip()) or any(
                    a > 0 and line[a - 1] != " " for a, _ in spans):
                break
            rows.append({n: line[a:b].strip() for n, (a, b) in zip(names, spans)})
        return rows
    raise AssertionError(f"no table starting with {first_column!r} in:\n{text}")


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/tap"


def assert_one_line_error(result: subprocess.CompletedProcess, script: str, *needles: str):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- every script ---------------------------------------------------------------------

def test_every_example_is_tested():
    # _example.py is the scripts' shared helper module, not an example of its own
    scripts = {path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("_")}
    assert scripts == {*TAP_SCRIPTS, "search_from_python.py"}


@pytest.mark.parametrize("script", TAP_SCRIPTS)
def test_help_says_what_the_script_gives(script):
    out = ok(run_example(script, "--help"))
    assert "--url" in out and "usage:" in out


@pytest.mark.parametrize("script, args", [
    ("text_search.py", ["comet"]),
    ("similar_to.py", ["obs000"]),
    ("cone_and_text.py", ["10", "-30", "1", "comet"]),
    ("async_job.py", ["comet"]),
    ("datalink_followup.py", []),
    ("samp_send.py", ["comet"]),
])
def test_unreachable_service_is_one_line(script, args):
    url = closed_port_url()
    result = run_example(script, *args, "--url", url)
    assert_one_line_error(result, script.removesuffix(".py"), "cannot reach", url,
                          "vo-clip serve")


# -- the searches -----------------------------------------------------------------------

def test_text_search_with_instrument_filter(tap):
    out = ok(run_example("text_search.py", "a bright compact source", tap,
                         "--instrument", "acs", "--top", "4"))
    assert out.startswith("4 observations matching 'a bright compact source' with acs")
    rows = printed_table(out, "obs_id")
    assert len(rows) == 4
    assert {row["instrument_name"] for row in rows} == {"ACS/WFC"}
    similarity = [float(row["similarity"]) for row in rows]
    assert similarity == sorted(similarity, reverse=True)


def test_text_search_quotes_the_text(tap):
    rows = printed_table(ok(run_example("text_search.py", "Saturn's rings", "--url", tap)),
                         "obs_id")
    assert len(rows) == 10


def test_similar_to_leaves_the_observation_out(tap):
    out = ok(run_example("similar_to.py", "obs000", "--url", tap, "--top", "5"))
    rows = printed_table(out, "obs_id")
    assert len(rows) == 5 and "obs000" not in {row["obs_id"] for row in rows}
    assert all(row["proposal_id"] for row in rows)  # joined with hst.observations
    similarity = [float(row["similarity"]) for row in rows]
    assert similarity == sorted(similarity, reverse=True)


def test_similar_to_unknown_observation_is_one_line(tap):
    result = run_example("similar_to.py", "no_such_observation", "--url", tap)
    assert_one_line_error(result, "similar_to", "no_such_observation")


def test_cone_and_text_stays_in_the_cone(tap):
    # the tiny archive puts obs i at (10 + i, -30 + i/2): obs003 ... obs007 lie within 2.1°
    out = ok(run_example("cone_and_text.py", "15", "-27.5", "2.1", "a faint blob", tap))
    rows = printed_table(out, "obs_id")
    assert {row["obs_id"] for row in rows} == {f"obs{i:03d}" for i in range(3, 8)}
    assert all(float(row["dist"]) <= 2.1 for row in rows)
    similarity = [float(row["similarity"]) for row in rows]
    assert similarity == sorted(similarity, reverse=True)


def test_async_job_shows_its_life_and_deletes_the_job(tap):
    out = ok(run_example("async_job.py", "a bright compact source", "--url", tap,
                         "--top", "3"))
    job_url = out.splitlines()[0].removeprefix("job created: ")
    assert job_url.startswith(tap + "/async/")
    for step in ("phase: PENDING", "finished, phase: COMPLETED", "job deleted"):
        assert step in out
    assert len(printed_table(out, "obs_id")) == 3
    assert requests.get(job_url, timeout=10).status_code == 404  # deleted on the service


def test_search_from_python_without_a_server(tiny_index, tiny_model_path, tmp_path):
    env = {"VO_CLIP_HOME": str(tmp_path), "VO_CLIP_INDEX": str(tiny_index),
           "VO_CLIP_MODEL": str(tiny_model_path)}
    out = ok(run_example("search_from_python.py", "a bright compact source", "--top", "3",
                         env=env))
    assert len([line for line in out.splitlines() if line.startswith("0.")]) == 3
    assert "more like obs" in out


# -- DataLink -----------------------------------------------------------------------------

def test_datalink_followup(tap, tmp_path):
    out = ok(run_example("datalink_followup.py", tap, "--rows", "2", "--out", str(tmp_path),
                         "--text", "a bright compact source"))
    assert out.startswith("2 observations matching")
    followed = [line.split()[1] for line in out.splitlines() if line.startswith("== ")]
    assert len(followed) == 2
    links = [line.split()[0] for line in out.splitlines() if line.startswith("  #")]
    assert {"#this", "#preview", "#proc"} <= set(links)
    assert "service_def=similar" in out
    for obs_id in followed:
        preview = tmp_path / f"{obs_id}-preview.png"
        assert preview.read_bytes().startswith(b"\x89PNG")
    # the "similar" descriptor was called: a ranked table without the observation itself
    similar_at = out.index("  similar: ")
    similar = printed_table(out, "obs_id", start=out[:similar_at].count("\n"))
    assert len(similar) == 10 and followed[0] not in {row["obs_id"] for row in similar}


# -- SAMP ----------------------------------------------------------------------------------

try:  # as in samp_send.py: pyvo >= 1.9 carries SAMP, astropy.samp is deprecated in 8.0
    from pyvo import samp
except ImportError:  # pragma: no cover - older pyvo
    from astropy import samp


@pytest.fixture
def samp_hub(tmp_path):
    """A SAMP hub on the loopback interface (no web profile) and a client receiving
    ``table.load.votable``; yields (environment for the script, received params,
    settings: ``settings["reply"] = False`` makes the receiver keep silent)."""
    lockfile = tmp_path / "samp-hub"
    hub = samp.SAMPHubServer(web_profile=False, addr="127.0.0.1", lockfile=str(lockfile))
    hub.start()
    received, settings = [], {"reply": True}
    receiver = samp.SAMPIntegratedClient(name="test receiver", addr="127.0.0.1")

    def load_table(private_key, sender_id, msg_id, mtype, params, extra):
        received.append(params)
        if settings["reply"]:
            receiver.reply(msg_id, {"samp.status": samp.SAMP_STATUS_OK, "samp.result": {}})

    try:
        receiver.connect(hub=hub)
        receiver.bind_receive_call("table.load.votable", load_table)
        yield {"SAMP_HUB": f"std-lockurl:{lockfile.as_uri()}"}, received, settings
    finally:
        if receiver.is_connected:
            receiver.disconnect()
        hub.stop()


def test_samp_send_loads_the_table_in_the_receiver(tap, samp_hub):
    env, received, _ = samp_hub
    # a cone around obs005 (15, -27.5): obs003 ... obs007 are inside
    out = ok(run_example("samp_send.py", "a bright compact source", tap, "--top", "10",
                         "--cone", "15", "-27.5", "2.1", env=env))
    assert len(printed_table(out, "obs_id")) == 5
    assert "test receiver: samp.ok" in out
    assert len(received) == 1
    url = received[0]["url"]
    assert url.startswith(tap + "/sync?") and url in out
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    table = parse_single_table(io.BytesIO(response.content)).to_table()
    assert sorted(table["obs_id"]) == [f"obs{i:03d}" for i in range(3, 8)]
    assert "similarity" in table.colnames and "access_url" in table.colnames


def test_samp_send_reports_a_silent_receiver(tap, samp_hub):
    env, received, settings = samp_hub
    settings["reply"] = False
    out = ok(run_example("samp_send.py", "comet", tap, "--timeout", "1", env=env))
    assert "test receiver: no reply within 1 s" in out
    assert len(received) == 1


def test_samp_send_to_an_absent_client_is_one_line(tap, samp_hub):
    env, received, _ = samp_hub
    result = run_example("samp_send.py", "comet", tap, "--to", "topcat", env=env)
    assert_one_line_error(result, "samp_send", "no SAMP application named 'topcat'",
                          "test receiver")
    assert received == []


def test_samp_send_without_a_hub_is_one_line(tap, tmp_path):
    env = {"HOME": str(tmp_path), "SAMP_HUB": None}  # the standard profile's ~/.samp
    result = run_example("samp_send.py", "comet", tap, env=env)
    assert_one_line_error(result, "samp_send", "no SAMP hub is running")
