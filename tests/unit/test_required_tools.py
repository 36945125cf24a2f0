"""The `require_tool` fixture: a test that needs a missing system tool skips locally and fails under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def run_needing_a_missing_tool(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_needs_tool.py").write_text(
        "def test_it(require_tool):\n    require_tool('no-such-tool-recstream')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_skips_where_the_tool_is_missing(tmp_path: Path) -> None:
    done = run_needing_a_missing_tool(tmp_path, None)
    assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_fails_under_ci(tmp_path: Path, ci: str) -> None:
    done = run_needing_a_missing_tool(tmp_path, ci)
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout
    assert "make test-tools" in done.stdout
