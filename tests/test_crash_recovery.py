"""What a process killed with SIGKILL leaves behind, and what survives it.

Real processes, really killed: a demo archive build (its rendering workers must die
with it, and the next build removes the directory it was writing), and `vo-clip
serve` (a completed async job and its result survive, byte for byte).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

from vo_clip.archive.demo import build_demo_archive, remove_abandoned_builds
from vo_clip.processes import process_alive

UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}


def _env(home: Path, **settings: str) -> dict:
    env = {**os.environ, "VO_CLIP_HOME": str(home),
           **{f"VO_CLIP_{k.upper()}": v for k, v in settings.items()}}
    env.pop("VO_CLIP_CONFIG", None)
    return env


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(0.05)
    return value


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_a_killed_demo_build_leaves_no_worker_and_its_files_go_next_time(tmp_path):
    out = tmp_path / "demo"
    build = subprocess.Popen(
        [sys.executable, "-m", "vo_clip", "demo", "--out", str(out), "--observations", "3000",
         "--proposals", "30", "--preview-size", "128"],
        env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        staging = _wait_for(lambda: next(iter(tmp_path.glob(f".demo.building-{build.pid}-*")),
                                         None), 120, "the build started")
        _wait_for(lambda: len(list((staging / "previews").glob("*.png"))) >= 8, 120,
                  "previews were rendered")
        workers = _children(build.pid)
        assert workers, "the build runs no worker processes"
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait(timeout=30)
    try:
        _wait_for(lambda: not any(process_alive(w) for w in workers), 10,
                  "the workers died with their parent")
    finally:  # the test's own processes: none may outlive it, even when it fails
        for worker in filter(process_alive, workers):
            os.kill(worker, signal.SIGKILL)
    assert staging.is_dir() and not out.exists()  # what the killed build left

    build_demo_archive(out, n_observations=12, n_proposals=3, preview_size=32, workers=1,
                       progress=False)
    assert not staging.exists()
    assert list(tmp_path.glob(".demo.*")) == []
    assert len(list((out / "previews").glob("*.png"))) == 12


def test_only_leftovers_of_dead_processes_are_removed(tmp_path):
    root = tmp_path / "demo"
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        kept = [tmp_path / f".demo.building-{living.pid}-abc",
                tmp_path / f".demo.old-{os.getpid()}-x", tmp_path / ".demo.building-legacy1",
                tmp_path / f".other.building-{dead.pid}-x"]
        gone = [tmp_path / f".demo.building-{dead.pid}-abc", tmp_path / f".demo.old-{dead.pid}-y",
                tmp_path / ".demo.building-legacy2"]
        for path in kept + gone:
            (path / "previews").mkdir(parents=True)
        two_days_ago = time.time() - 2 * 86400
        os.utime(tmp_path / ".demo.building-legacy2", (two_days_ago, two_days_ago))
        assert sorted(remove_abandoned_builds(root)) == sorted(gone)
        assert all(path.is_dir() for path in kept) and not any(p.exists() for p in gone)
    finally:
        living.kill()
        living.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(home: Path, index: Path, model: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "vo_clip", "serve", "--port", str(port)],
                              env=_env(home, index=str(index), model=str(model)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def up():
        assert server.poll() is None, server.stderr.read().decode()
        try:
            return requests.get(url + "/health", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    _wait_for(up, 120, "the server answered")
    return server, url


@pytest.mark.slow
def test_completed_jobs_survive_a_kill_9_byte_for_byte(tiny_index, tiny_model_path, tmp_path):
    server, url = _serve(tmp_path, tiny_index, tiny_model_path)
    try:
        created = requests.post(url + "/tap/async", allow_redirects=False, timeout=30, data={
            "LANG": "ADQL", "PHASE": "RUN", "RUNID": "before-the-crash",
            "QUERY": "SELECT TOP 7 obs_id, s_ra, s_dec, access_url FROM ivoa.ObsCore "
                     "ORDER BY obs_id"})
        job_id = created.headers["Location"].rsplit("/", 1)[1]

        def completed():
            document = requests.get(f"{url}/tap/async/{job_id}", params={"WAIT": "5"},
                                    timeout=30).content
            return ET.fromstring(document).findtext("uws:phase", namespaces=UWS) == "COMPLETED"

        _wait_for(completed, 60, "the job completed")
        before = requests.get(f"{url}/tap/async/{job_id}/results/result", timeout=30)
        assert before.status_code == 200 and before.content.count(b"<TR>") == 7
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        server.stderr.close()

    server, url = _serve(tmp_path, tiny_index, tiny_model_path)
    try:
        document = ET.fromstring(requests.get(f"{url}/tap/async/{job_id}", timeout=30).content)
        assert document.findtext("uws:phase", namespaces=UWS) == "COMPLETED"
        assert document.findtext("uws:runId", namespaces=UWS) == "before-the-crash"
        after = requests.get(f"{url}/tap/async/{job_id}/results/result", timeout=30)
        assert after.status_code == 200
        assert after.content == before.content
        assert after.headers["Content-Type"] == before.headers["Content-Type"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()
