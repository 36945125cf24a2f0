"""The import contracts hold: a pure core, and streams/ layered cli -> lab -> worker | client -> kafka -> settings."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def test_each_room_of_streams_says_what_lives_there_and_what_it_may_import() -> None:
    import importlib

    for room in ("streams.kafka", "streams.client", "streams.worker", "streams.lab"):
        doc = importlib.import_module(room).__doc__ or ""
        lines = [line for line in doc.strip().splitlines() if line.strip()]
        assert len(lines) >= 2, f"{room}: the docstring says what lives there, then what it may import"
        assert lines[1].startswith("May import"), f"{room}: the second line says what it may import"
