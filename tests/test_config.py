"""Configuration precedence: defaults < file < environment < command line."""

from pathlib import Path

import pytest

from vo_clip.config import Config
from vo_clip.errors import VoClipError


def test_precedence(tmp_path):
    file = tmp_path / "vo_clip.toml"
    file.write_text('model = "from-file"\nauthority = "file.example"\n'
                    'archive = "~/archive-from-file"\n')
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "VO_CLIP_CONFIG": str(file),
           "VO_CLIP_MODEL": "from-env"}
    config = Config.load(env=env, device="cpu")
    assert config.home == tmp_path / "cache" / "vo_clip"
    assert config.model == "from-env"
    assert config.authority == "file.example"
    assert config.archive == Path("~/archive-from-file").expanduser()
    assert config.device == "cpu"
    assert config.index_dir == config.home / "indexes" / "archive-from-file"
    assert Config.load(env=env, model="from-flag").model == "from-flag"


def test_defaults_point_at_the_demo_archive(tmp_path):
    config = Config.load(env={"VO_CLIP_HOME": str(tmp_path)})
    assert config.archive_dir == tmp_path / "demo-archive"
    assert config.index_dir == tmp_path / "indexes" / "demo-archive"


def test_file_in_a_vo_clip_table_is_read(tmp_path):
    file = tmp_path / "settings.toml"
    file.write_text('[vo_clip]\nbase_url = "https://archive.example/vo"\n')
    assert Config.load(file=file, env={}).base_url == "https://archive.example/vo"


@pytest.mark.parametrize("text, match", [
    ('modle = "typo"\n', "unknown setting"),
    ("model = \n", "not valid TOML"),
])
def test_bad_files_are_named(tmp_path, text, match):
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(VoClipError, match=match):
        Config.load(file=file, env={})


def test_missing_file(tmp_path):
    with pytest.raises(VoClipError, match="cannot read configuration file"):
        Config.load(file=tmp_path / "nope.toml", env={})


def test_server_settings_are_whole_numbers_from_any_source(tmp_path):
    file = tmp_path / "serve.toml"
    file.write_text("threads = 3\nchannel_timeout = 12\n")
    env = {"VO_CLIP_HOME": str(tmp_path), "VO_CLIP_PROXY_FIX": "1",
           "VO_CLIP_BLOCKING_WAITS": "2", "VO_CLIP_WAIT_MAX": "0"}
    config = Config.load(file=file, env=env)
    assert (config.threads, config.channel_timeout, config.proxy_fix, config.blocking_waits,
            config.wait_max, config.connection_limit) == (3, 12, 1, 2, 0, 1000)
    for name, value in [("threads", "0"), ("connection_limit", "-5"), ("proxy_fix", "-1"),
                        ("channel_timeout", "soon"), ("threads", 2.5)]:
        with pytest.raises(VoClipError, match=f"setting {name} cannot be"):
            Config.load(env={"VO_CLIP_HOME": str(tmp_path)}, **{name: value})


def test_limits_are_settings_that_reach_the_services(tmp_path):
    file = tmp_path / "limits.toml"
    file.write_text("query_max_texts = 3\njob_max_count = 20\n")
    config = Config.load(file=file, env={"VO_CLIP_SYNC_EXECUTION_LIMIT": "15"})
    tap, jobs = config.tap_limits(), config.uws_limits()
    assert (tap.sync_execution_limit, tap.query_max_texts) == (15, 3)
    assert jobs.job_max_count == 20
    assert tap.result_max_bytes == Config.load(env={}).tap_limits().result_max_bytes


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "sixty", ""])
def test_a_limit_must_be_a_positive_integer(value):
    with pytest.raises(VoClipError, match="setting sync_execution_limit cannot be"):
        Config.load(env={"VO_CLIP_SYNC_EXECUTION_LIMIT": value})
