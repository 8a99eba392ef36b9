"""CI's rule: under CI=true a test that lacks a tool fails; on a developer's machine it skips.

A green CI run must mean that the validators, the browser and the schemas really ran;
a skip there would hide a missing install step in .ci/run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CASES = '''
import pytest
from conftest import missing_tool

needs_nothing_here = pytest.mark.skipif(True, reason=missing_tool("a tool (apt-get install it)"))


@needs_nothing_here
def test_marked():
    pass


def test_skips_inside():
    pytest.skip(missing_tool("another tool"))


def test_skips_for_another_reason():
    pytest.skip("not about a tool")
'''


@pytest.mark.parametrize("ci, expected", [("true", "1 failed, 1 skipped, 1 error"),
                                          ("", "3 skipped")])
def test_a_missing_tool_fails_only_under_ci(tmp_path, ci, expected):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_cases.py").write_text(CASES, encoding="utf-8")
    env = {**os.environ, "CI": ci}
    # a skip mark is evaluated at set-up, so there the failure is reported as an error
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    summary = result.stdout.strip().splitlines()[-1]
    assert expected in summary, result.stdout
    assert (result.returncode != 0) == bool(ci), result.stdout
