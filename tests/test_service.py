"""The service placeholder: the factory, the health route, and no torch in the web layer."""

import subprocess
import sys

from conftest import run_cli

from service import create_app
from vo_clip.config import Config


def test_health_reports_the_index(tiny_archive, tiny_model_path, tmp_path):
    run_cli("index", "--archive", str(tiny_archive.root), "--model", str(tiny_model_path),
            "--out", str(tmp_path / "index"), home=tmp_path)
    app = create_app(Config(home=tmp_path), test_config={"index": tmp_path / "index"})
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert response.json["observations"] == 36 and response.json["status"] == "ok"
    assert response.headers["Server"].startswith("vo_clip/")


def test_health_is_503_without_an_index(tmp_path):
    response = create_app(Config(home=tmp_path)).test_client().get("/health")
    assert response.status_code == 503
    assert "no index at" in response.json["reason"]


def test_the_web_layer_does_not_import_torch():
    code = "import sys, service; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_vo_clip_serve_answers_over_http(tiny_archive, tiny_model_path, tmp_path):
    """`vo-clip serve` runs the app under waitress on a loopback port."""
    import json
    import os
    import socket
    import time
    import urllib.error
    import urllib.request

    run_cli("index", "--archive", str(tiny_archive.root), "--model", str(tiny_model_path),
            "--out", str(tmp_path / "index"), home=tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "VO_CLIP_HOME": str(tmp_path), "VO_CLIP_INDEX": str(tmp_path / "index")}
    server = subprocess.Popen([sys.executable, "-m", "vo_clip", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    body, server_header = json.load(r), r.headers["Server"]
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "server did not start within 60 s"
                time.sleep(0.3)
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert body["status"] == "ok" and body["observations"] == 36
    assert server_header.startswith("vo_clip/")
