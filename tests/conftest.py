"""Shared test configuration: the model ships offline, nothing is fetched from a hub."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import shutil
from collections.abc import Callable

import pytest


def _require_tool(*names: str) -> None:
    """Skip the calling test where a system tool is missing; under CI=true fail it instead.

    Tests that drive kcat, Prometheus/promtool or shellcheck must not pass in CI by skipping:
    `make test-tools` installs all of them there.
    """
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not on PATH (`make test-tools` installs it)"
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"{message}; with CI=true a missing tool fails the run instead of skipping", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def require_tool() -> Callable[..., None]:
    return _require_tool
