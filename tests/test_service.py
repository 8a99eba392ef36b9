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
