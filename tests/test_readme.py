"""The README is executed: every ```python block and every `vo-clip` command in it runs.

A new user copies the README's commands into a shell; if one fails for them, the README
is wrong. So each fenced ``python`` block runs as a script, and each ``vo-clip`` command
of a ``sh`` block runs in bash, as written, in README order, in one working directory,
with ``HOME`` pointing at a fresh directory whose default vo_clip home holds the demo
archive and index a new user's first query builds. Only the address changes: the
README's ``127.0.0.1:8000`` becomes a live loopback server on the demo index, and
``vo-clip serve`` commands get a free port. ``pip``, ``npm`` and ``pytest`` are the set-up
steps `.ci/run` itself performs on a fresh clone; they are not run again here.

A block the test cannot run on a machine without the network (MAST, an LLM endpoint,
pretrained weights) or without a GPU says so in the README, on the line before its fence:
``<!-- readme-test: skip: REASON -->``; it is reported as skipped with that reason.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import live_server

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip:\s*(?P<reason>.+?)\s*-->")
#: The programs whose commands the README test runs; the others are set-up steps.
RUN = ("vo-clip", "curl", "cp")
SETUP = ("pip", "npm", "pytest")
README_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    language: str
    line: int  # of the opening fence, 1-based
    text: str
    skip: str | None  # the README's reason, if it is marked


def readme_blocks(text: str) -> list[Block]:
    blocks, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        mark = SKIP_MARK.search(lines[index - 1]) if index else None
        blocks.append(Block(fence.group(1), index + 1, "\n".join(lines[index + 1:end]),
                            mark.group("reason") if mark else None))
        index = end + 1
    return blocks


def shell_commands(block: Block) -> list[str]:
    """The block's commands, as written: continuations joined, comments dropped, and one
    command per ``&&``- or ``;``-separated part (quotes respected), as bash runs them."""
    commands = []
    for line in block.text.replace("\\\n", " ").splitlines():
        part, quote, index = "", None, 0
        while index < len(line):
            char = line[index]
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#" and (not part or part[-1].isspace()):
                break
            elif char == ";" or line.startswith("&&", index):
                commands.append(part.strip())
                part, index = "", index + (2 if char == "&" else 1)
                continue
            part += char
            index += 1
        commands.append(part.strip())
    return [command for command in commands if command]


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def _cases():
    for block in BLOCKS:
        if block.language == "python":
            cases = [("python", block.text)]
        elif block.language == "sh":
            cases = [("sh", command) for command in shell_commands(block)
                     if command.split()[0] not in SETUP]
        else:
            continue
        for kind, code in cases:
            first = code.splitlines()[0] if kind == "python" else code
            marks = [pytest.mark.skip(reason=f"README: {block.skip}")] if block.skip else []
            yield pytest.param(kind, code, id=f"L{block.line}:{first[:60]}", marks=marks)


def test_the_readme_has_what_this_test_reads():
    kinds = {block.language for block in BLOCKS}
    assert {"python", "sh"} <= kinds
    # a block marked skip (a cluster, a GPU) may name other programs: it never runs here
    commands = [c for b in BLOCKS if b.language == "sh" and not b.skip
                for c in shell_commands(b)]
    assert all(c.split()[0] in RUN + SETUP for c in commands), commands
    assert sum(c.startswith("vo-clip") for c in commands) >= 20
    skipped = [b for b in BLOCKS if b.skip]
    assert all(re.search(r"network|GPU|MAST|LLM|minutes", b.skip) for b in skipped), skipped


# -- the user's machine -------------------------------------------------------------------

@pytest.fixture(scope="module")
def user(demo_first_run, tmp_path_factory):
    """A new user's HOME (its default vo_clip home is the demo build) and working directory."""
    demo_home, first = demo_first_run
    assert first.returncode == 0, first.stderr
    home = tmp_path_factory.mktemp("readme-user")
    (home / ".cache").mkdir()
    (home / ".cache" / "vo_clip").symlink_to(demo_home, target_is_directory=True)
    workdir = home / "work"
    workdir.mkdir()
    shutil.copytree(README.parent / "registry", workdir / "registry")
    # the picture the README's image searches upload: any preview will do
    preview = sorted((demo_home / "demo-archive" / "previews").rglob("*.png"))[7]
    shutil.copy(preview, workdir / "my_galaxy.png")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("VO_CLIP_") and key != "XDG_CACHE_HOME"}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
               PYTHONUNBUFFERED="1")
    return workdir, env


@pytest.fixture(scope="module")
def demo_url(demo_first_run):
    from service import create_app
    from vo_clip.config import Config

    home, _ = demo_first_run
    with live_server(create_app(Config(home=home))) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(command: str, workdir: Path, env: dict) -> None:
    """Start a README `vo-clip serve` on a free loopback port, probe it, stop it."""
    port = _free_port()
    words = shlex.split(command)
    for option, value in (("--port", str(port)), ("--host", "127.0.0.1")):
        if option in words:
            words[words.index(option) + 1] = value
        else:
            words += [option, value]
    server = subprocess.Popen(words, cwd=workdir, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                answer = requests.get(base + "/tap/availability", timeout=5)
                if answer.status_code == 200 and b"<vosi:available>true" in answer.content:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"{command!r} did not come up in 300 s"
            time.sleep(0.5)
        assert requests.get(base + "/oai?verb=Identify", timeout=30).status_code == 200
        sync = requests.get(base + "/tap/sync", timeout=60, params={
            "LANG": "ADQL", "QUERY": "SELECT TOP 3 obs_id FROM ivoa.ObsCore"})
        assert sync.status_code == 200 and b'value="OK"' in sync.content
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert "Traceback" not in output, output


@pytest.mark.slow
@pytest.mark.parametrize("kind, code", list(_cases()))
def test_readme(kind, code, user, demo_url):
    workdir, env = user
    if kind == "sh" and shlex.split(code)[0] == "vo-clip" and " serve" in f" {code} ":
        _serve(code, workdir, env)
        return
    code = code.replace(README_URL, demo_url)
    args = [sys.executable, "-c", code] if kind == "python" else ["bash", "-c", code]
    result = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f"{code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() or kind == "sh" and code.startswith("cp "), \
        f"{code} printed nothing"
