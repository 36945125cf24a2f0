"""An app can import the client SDK without paying for the worker: no Faust, torch or sentence-transformers."""

import subprocess
import sys

HEAVY = ["faust", "mode", "torch", "sentence_transformers", "transformers", "hnswlib", "rocksdict", "streams.worker", "streams.lab"]


def test_importing_the_client_loads_no_worker_or_model_libraries() -> None:
    # A fresh interpreter: this test process has imported Faust and torch already.
    probe = (
        "import sys\n"
        "from streams.client import RecommendationSubscriber, RecstreamClient\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing streams.client loaded {result.stdout.strip()}"
