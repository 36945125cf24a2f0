"""Static checks of the deployment files, none of which needs a Docker engine.

docker-compose.yml, Dockerfile, .dockerignore, deploy/kafka/create-topics.sh and
deploy/kafka/topics.json are checked against each other and against pyproject.toml and the CLI,
so that a mismatch (a worker pointed at the wrong listener, a topic created with the wrong
layout, an image that cannot run `recstream worker`) fails here instead of at `docker compose up`.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CREATE_TOPICS = ROOT / "deploy" / "kafka" / "create-topics.sh"
TOPICS_JSON = ROOT / "deploy" / "kafka" / "topics.json"

# The settings' documented defaults (RECSTREAM_* environment variables).
DEFAULT_EVENTS_PARTITIONS = 4
DEFAULT_METRICS_PORT = 9108
DEFAULT_TOPIC_NAMES = {
    "RECSTREAM_TOPIC_EVENTS": "recstream.events",
    "RECSTREAM_TOPIC_ITEMS": "recstream.items",
    "RECSTREAM_TOPIC_RECOMMENDATIONS": "recstream.recommendations",
    "RECSTREAM_TOPIC_COVISITS": "recstream.covisits",
    "RECSTREAM_TOPIC_DEAD_LETTER": "recstream.dead-letter",
}
DAY_MS = 24 * 60 * 60 * 1000


# --------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a YAML mapping"
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict:
    assert isinstance(compose.get("services"), dict), "docker-compose.yml has no services mapping"
    return compose["services"]


@pytest.fixture(scope="module")
def topics_layout() -> list[dict]:
    return json.loads(TOPICS_JSON.read_text())


def service_env(service: dict) -> dict[str, str]:
    """A service's environment as strings (Compose accepts a mapping or a list of K=V)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def default_of(value: str) -> str:
    """`${VAR:-default}` -> default; a plain value unchanged."""
    m = re.fullmatch(r"\$\{\w+:?-([^}]*)\}", value)
    return m.group(1) if m else value


def service_mounts(service: dict) -> list[dict]:
    """Volumes in long form: {type, source, target, read_only}."""
    mounts = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, dict):
            mounts.append(
                {
                    "type": vol.get("type"),
                    "source": vol.get("source"),
                    "target": vol.get("target"),
                    "read_only": bool(vol.get("read_only")),
                }
            )
            continue
        parts = vol.split(":")
        if len(parts) == 1:  # anonymous volume
            mounts.append({"type": "volume", "source": None, "target": parts[0], "read_only": False})
            continue
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else ""
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append({"type": kind, "source": source, "target": target, "read_only": "ro" in mode.split(",")})
    return mounts


def published_ports(service: dict) -> list[tuple[str | None, int]]:
    """(host port or None, container port) for each `ports` entry."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            out.append((str(p["published"]) if p.get("published") else None, int(p["target"])))
            continue
        spec = str(p).split("/")[0]
        parts = spec.split(":")
        container = int(parts[-1])
        host = parts[-2] if len(parts) >= 2 and parts[-2] else None
        out.append((host, container))
    return out


def as_argv(value) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else shlex.split(value)


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


KNOWN_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped
    (Docker strips comment lines inside a continuation too)."""
    instructions: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not buf:
            start = lineno
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line)
        keyword, _, args = " ".join(part for part in buf if part).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buf = []
    if buf:
        raise AssertionError(f"Dockerfile ends inside a continuation (from line {start})")
    return instructions


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    """`--from=build --chown=a:b src dst` -> ({from: build, chown: a:b}, [src, dst])."""
    tokens = shlex.split(args)
    flags = {}
    while tokens and tokens[0].startswith("--"):
        key, _, value = tokens.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, tokens


def copy_sources(ins: Instruction) -> tuple[dict[str, str], list[str]]:
    """COPY/ADD flags and sources (relative, without trailing slash); shell or JSON form."""
    flags, words = split_flags(ins.args)
    if ins.args.lstrip().startswith("[") or (words and words[0].startswith("[")):
        json_part = ins.args[ins.args.index("[") :]
        words = json.loads(json_part)
    return flags, [w.rstrip("/").removeprefix("./") or "." for w in words[:-1]]


def exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT/RUN arguments as argv (shell form becomes /bin/sh -c ...)."""
    if args.startswith("["):
        return json.loads(args)
    return ["/bin/sh", "-c", args]


def env_pairs(args: str) -> dict[str, str]:
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(tok.split("=", 1) for tok in tokens)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def stages(instructions) -> list[dict]:
    """[{name, base, instructions}] in order."""
    out: list[dict] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            _, words = split_flags(ins.args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            out.append({"name": name, "base": words[0], "instructions": []})
        elif ins.keyword in {"ARG"} and not out:
            continue
        else:
            assert out, f"line {ins.line}: {ins.keyword} before the first FROM"
            out[-1]["instructions"].append(ins)
    assert out, "Dockerfile has no FROM"
    return out


def stage_env(stage: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage["instructions"]:
        if ins.keyword == "ENV":
            env.update(env_pairs(ins.args))
    return env


def final_entrypoint_and_cmd(stages) -> tuple[list[str], list[str]]:
    final = stages[-1]["instructions"]
    entrypoint = [exec_form(i.args) for i in final if i.keyword == "ENTRYPOINT"]
    cmd = [exec_form(i.args) for i in final if i.keyword == "CMD"]
    return (entrypoint[-1] if entrypoint else []), (cmd[-1] if cmd else [])


def is_pip_install(argv_text: str) -> bool:
    return bool(re.search(r"\bpip3?\s+install\b|\bpython3?\s+-m\s+pip\s+install\b", argv_text))


def installs_project(run_args: str) -> bool:
    """A RUN whose pip install names the project directory (`.`) as a requirement."""
    for command in re.split(r"&&|;|\|\|", run_args):
        if not is_pip_install(command):
            continue
        words = shlex.split(command)
        after = words[words.index("install") + 1 :]
        if any(w in {".", "./", ".[test]"} or w.startswith(".[") for w in after):
            return True
    return False


def dockerignore_patterns() -> list[str]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, approximately: a pattern matches a path or any of its parent directories;
    `**/` matches any number of leading directories; a later `!pattern` re-includes."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.lstrip("/").removeprefix("./").rstrip("/")
        variants = {pat}
        if pat.startswith("**/"):
            variants.add(pat[3:])
            tails = {"/".join(parts[i : j + 1]) for i in range(len(parts)) for j in range(i, len(parts))}
            if any(fnmatch.fnmatchcase(t, pat[3:]) for t in tails):
                ignored = not negate
                continue
        if any(fnmatch.fnmatchcase(c, v) for c in candidates for v in variants):
            ignored = not negate
    return ignored


def run_create_topics(tmp_path: Path, env: dict[str, str] | None = None, stub_rc: int = 0):
    """Run create-topics.sh with a stub kafka-topics.sh that records its argv; return
    (completed process, list of recorded argvs)."""
    record = tmp_path / "calls.jsonl"
    stub = tmp_path / "kafka-topics-stub"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['STUB_RECORD'], 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "sys.exit(int(os.environ.get('STUB_RC', '0')))\n"
    )
    stub.chmod(0o755)
    # A clean environment: a developer's RECSTREAM_TOPIC_* must not leak into the defaults.
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KAFKA_TOPICS": str(stub),
        "STUB_RECORD": str(record),
        "STUB_RC": str(stub_rc),
        **(env or {}),
    }
    proc = subprocess.run(
        ["sh", str(CREATE_TOPICS)], env=full_env, capture_output=True, text=True, timeout=60
    )
    calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return proc, calls


def parse_kafka_topics_call(argv: list[str]) -> dict:
    valued = {"--bootstrap-server", "--topic", "--partitions", "--replication-factor", "--config"}
    flags = {"--create", "--if-not-exists"}
    out: dict = {"config": {}, "flags": set()}
    it = iter(argv)
    for arg in it:
        if arg in flags:
            out["flags"].add(arg)
        elif arg in valued:
            value = next(it)
            if arg == "--config":
                key, _, val = value.partition("=")
                out["config"][key] = val
            else:
                out[arg.lstrip("-")] = value
        else:
            raise AssertionError(f"unexpected kafka-topics.sh argument {arg!r} in {argv}")
    return out


def expected_topics(layout, events_partitions: int, names: dict[str, str] | None = None) -> dict:
    names = names or {}
    out = {}
    for t in layout:
        name = names.get(t["name_env"], t["default_name"])
        partitions = events_partitions if t["partitions"] == "events" else t["partitions"]
        out[name] = {"partitions": str(partitions), "config": {k: str(v) for k, v in t["config"].items()}}
    return out


# --------------------------------------------------------------------------------------------
# docker-compose.yml


def test_compose_has_kraft_kafka_topics_and_worker_and_no_zookeeper(compose, services):
    assert {"kafka", "topics", "worker"} <= set(services), sorted(services)
    for name, service in services.items():
        assert "zookeeper" not in name.lower() and "zookeeper" not in str(service.get("image", "")).lower()
        assert not [k for k in service_env(service) if "ZOOKEEPER" in k.upper()], f"{name}: KRaft only"

    kafka = services["kafka"]
    assert str(kafka.get("image", "")).startswith("apache/kafka:"), kafka.get("image")
    env = service_env(kafka)
    roles = {r.strip() for r in (env.get("KAFKA_PROCESS_ROLES") or "").split(",")}
    assert roles == {"broker", "controller"}, f"single combined KRaft node expected, got {roles}"
    assert env.get("KAFKA_NODE_ID"), "KRaft needs KAFKA_NODE_ID"
    voters = (env.get("KAFKA_CONTROLLER_QUORUM_VOTERS") or "").split(",")
    assert len(voters) == 1 and voters[0].startswith(f"{env['KAFKA_NODE_ID']}@"), (
        f"the only quorum voter must be this node ({env['KAFKA_NODE_ID']}), got {voters}"
    )


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in value.split(","):
        m = re.fullmatch(r"(\w+)://([^:]*):(\d+)", item.strip())
        assert m, f"cannot parse listener {item!r}"
        out[m.group(1)] = (m.group(2), int(m.group(3)))
    return out


def test_kafka_listeners_are_consistent(services):
    kafka = services["kafka"]
    env = service_env(kafka)
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]

    assert set(listeners) <= set(protocols), "every listener needs a security protocol"
    assert controller in listeners, "the controller listener must be bound"
    assert controller not in advertised, "a controller listener must not be advertised to clients"
    assert set(advertised) == set(listeners) - {controller}
    for name, (_, port) in advertised.items():
        assert listeners[name][1] == port, f"{name}: advertised port {port} is not the bound one"
    assert env.get("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT") in advertised

    by_address = {f"{h}:{p}": name for name, (h, p) in advertised.items()}
    assert "kafka:29092" in by_address, f"internal listener kafka:29092 missing: {by_address}"
    assert "localhost:9092" in by_address, f"external listener localhost:9092 missing: {by_address}"
    assert ("9092", 9092) in published_ports(kafka), "the external listener must be published on host port 9092"

    voter_host, voter_port = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@", 1)[1].rsplit(":", 1)
    assert int(voter_port) == listeners[controller][1], "quorum voter port is not the controller listener"
    assert voter_host in {"kafka", services["kafka"].get("hostname", "kafka")}


def test_kafka_single_node_settings(compose, services):
    kafka = services["kafka"]
    env = service_env(kafka)
    rf_keys = [k for k in env if k.endswith("REPLICATION_FACTOR")]
    assert {"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"} <= set(rf_keys)
    for key in rf_keys + [k for k in env if k.endswith("MIN_ISR")]:
        assert env[key] == "1", f"{key}={env[key]}: there is one broker"
    # Topics come from the topics job (and Faust's own declarations), never from a typo.
    auto_create = str(kafka["environment"].get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")).lower()
    assert auto_create == "false", f"KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false, got {auto_create}"

    log_dirs = env.get("KAFKA_LOG_DIRS")
    assert log_dirs, "KAFKA_LOG_DIRS unset: the image default is under /tmp"
    data_mounts = [m for m in service_mounts(kafka) if m["target"] == log_dirs]
    assert data_mounts and data_mounts[0]["type"] == "volume", f"{log_dirs} must be on a named volume"
    assert data_mounts[0]["source"] in (compose.get("volumes") or {}), "kafka's volume is not declared"


def test_kafka_healthcheck_probes_the_broker(services):
    kafka = services["kafka"]
    test = kafka.get("healthcheck", {}).get("test")
    text = " ".join(as_argv(test)) if isinstance(test, list) else str(test)
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in text
    m = re.search(r"--bootstrap-server\s+(\S+)", text)
    assert m, "healthcheck has no --bootstrap-server"
    port = int(m.group(1).rsplit(":", 1)[1])
    bound = {p for _, (_, p) in _listeners(service_env(kafka)["KAFKA_LISTENERS"]).items()}
    assert port in bound, f"healthcheck probes port {port}, broker listens on {bound}"


def test_startup_order(services):
    kafka, topics, worker = services["kafka"], services["topics"], services["worker"]
    assert "healthcheck" in kafka
    assert topics.get("depends_on", {}).get("kafka", {}).get("condition") == "service_healthy"
    assert worker.get("depends_on", {}).get("topics", {}).get("condition") == "service_completed_successfully"
    assert str(topics.get("restart", "no")) in {"no", "on-failure"}, "a one-shot job must not restart forever"


def test_topics_service_runs_the_mounted_script(services):
    kafka, topics = services["kafka"], services["topics"]
    assert topics.get("image") == kafka.get("image"), "topics uses the broker's image (for kafka-topics.sh)"
    mounts = [m for m in service_mounts(topics) if m["type"] == "bind"]
    script = [m for m in mounts if (ROOT / m["source"]).resolve() == CREATE_TOPICS.resolve()]
    assert script, f"deploy/kafka/create-topics.sh is not mounted: {mounts}"
    assert script[0]["read_only"], "the script must be mounted read-only"
    argv = as_argv(topics.get("entrypoint")) + as_argv(topics.get("command"))
    assert script[0]["target"] in argv, f"topics runs {argv}, not the mounted {script[0]['target']}"

    env = service_env(topics)
    advertised = {f"{h}:{p}" for h, p in _listeners(service_env(kafka)["KAFKA_ADVERTISED_LISTENERS"]).values()}
    assert env.get("BOOTSTRAP", "kafka:29092") in advertised - {"localhost:9092"}


def test_compose_host_paths_exist(services):
    for name, service in services.items():
        for mount in service_mounts(service):
            if mount["type"] == "bind":
                path = (ROOT / mount["source"]).resolve()
                # A missing bind source is silently created as an empty directory by Docker.
                assert path.exists(), f"{name}: bind mount source {mount['source']} does not exist"
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), f"{name}: build context {context} missing"
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (context / dockerfile).is_file(), f"{name}: {dockerfile} missing"
    assert CREATE_TOPICS.is_file()


def test_worker_command_is_a_cli_subcommand(services, pyproject, stages):
    import click

    worker = services["worker"]
    entrypoint, _ = final_entrypoint_and_cmd(stages)
    # Compose's `command` replaces CMD but runs after the image's ENTRYPOINT.
    argv = (as_argv(worker["entrypoint"]) if "entrypoint" in worker else entrypoint) + as_argv(worker.get("command"))
    assert argv[:2] == ["recstream", "worker"], f"the worker container would run {argv}"

    scripts = pyproject["project"]["scripts"]
    assert argv[0] in scripts, f"{argv[0]} is not a console script in pyproject.toml: {scripts}"
    module_name, _, attr = scripts[argv[0]].partition(":")
    module = importlib.import_module(module_name)  # fails (not skips) while streams.cli is missing
    entry = module
    for part in attr.split("."):
        entry = getattr(entry, part)
    assert callable(entry), f"{scripts[argv[0]]} is not callable"
    # The entry point wraps the click group (to turn expected errors into one line); find that group.
    group = entry if isinstance(entry, click.Group) else getattr(module, "cli", None)
    assert isinstance(group, click.Group), f"{module_name} has no click group behind {scripts[argv[0]]}"
    commands = group.list_commands(click.Context(group))
    assert argv[1] in commands, f"{argv[1]!r} is not a subcommand of {scripts[argv[0]]}: {commands}"


def test_worker_environment(compose, services, stages):
    kafka, worker, topics = services["kafka"], services["worker"], services["topics"]
    env = service_env(worker)
    advertised = {f"{h}:{p}" for h, p in _listeners(service_env(kafka)["KAFKA_ADVERTISED_LISTENERS"]).values()}
    assert env.get("RECSTREAM_KAFKA_BOOTSTRAP") in advertised - {"localhost:9092"}, (
        "the worker must use the broker's internal listener (localhost is the container itself)"
    )
    runtime_env = stage_env(stages[-1])
    metrics_host = env.get("RECSTREAM_METRICS_HOST", runtime_env.get("RECSTREAM_METRICS_HOST"))
    assert metrics_host == "0.0.0.0", "on 127.0.0.1 the metrics port is unreachable from outside the container"

    metrics_port = int(env.get("RECSTREAM_METRICS_PORT", DEFAULT_METRICS_PORT))
    assert metrics_port in [c for _, c in published_ports(worker)], "metrics port not mapped"

    data_dir = env.get("RECSTREAM_DATA_DIR", runtime_env.get("RECSTREAM_DATA_DIR"))
    mounts = [m for m in service_mounts(worker) if m["target"] == data_dir]
    assert mounts and mounts[0]["type"] == "volume", f"data dir {data_dir} is not on a named volume"
    assert mounts[0]["source"] in (compose.get("volumes") or {})

    # Faust declares the events topic with RECSTREAM_EVENTS_PARTITIONS; the topics job creates it
    # with EVENTS_PARTITIONS. Both must come from the same value.
    worker_parts = env.get("RECSTREAM_EVENTS_PARTITIONS", str(DEFAULT_EVENTS_PARTITIONS))
    topics_parts = service_env(topics).get("EVENTS_PARTITIONS", str(DEFAULT_EVENTS_PARTITIONS))
    assert worker_parts == topics_parts, (worker_parts, topics_parts)
    assert default_of(worker_parts) == str(DEFAULT_EVENTS_PARTITIONS)


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        probe = subprocess.run(["docker-compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0 and re.search(r"v?2\.\d+", probe.stdout):
            return ["docker-compose"]
    return None


def test_docker_compose_config_validates():
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Compose v2 here (`docker compose` plugin or docker-compose v2 binary)")
    env = {k: v for k, v in os.environ.items() if k != "RECSTREAM_EVENTS_PARTITIONS"}
    env["GRAFANA_ADMIN_PASSWORD"] = "not-a-default"  # required: compose refuses to start without it
    base = [*cli, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    quiet = subprocess.run([*base, "config", "-q"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert quiet.returncode == 0, quiet.stderr

    # Interpolation: one variable sets the partitions of both the topics job and the workers.
    env["RECSTREAM_EVENTS_PARTITIONS"] = "8"
    full = subprocess.run([*base, "config", "--format", "json"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert full.returncode == 0, full.stderr
    resolved = json.loads(full.stdout)["services"]
    assert resolved["topics"]["environment"]["EVENTS_PARTITIONS"] == "8"
    assert resolved["worker"]["environment"]["RECSTREAM_EVENTS_PARTITIONS"] == "8"


# --------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def test_dockerfile_parses_and_is_based_on_python_311(instructions, stages):
    unknown = [(i.line, i.keyword) for i in instructions if i.keyword not in KNOWN_INSTRUCTIONS]
    assert not unknown, f"unknown instructions (a broken continuation?): {unknown}"
    names = set()
    for stage in stages:
        if stage["base"] in names:
            continue  # FROM an earlier stage
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", stage["base"]), stage["base"]
        if stage["name"]:
            names.add(stage["name"])


def test_dockerfile_installs_cpu_torch_before_the_project(instructions, pyproject):
    pins = [d for d in pyproject["project"]["dependencies"] if re.match(r"torch\s*==", d)]
    assert pins, "pyproject.toml no longer pins torch"
    pin = re.sub(r"\s", "", pins[0])
    runs = [(n, i) for n, i in enumerate(instructions) if i.keyword == "RUN" and is_pip_install(i.args)]

    torch_runs = [n for n, i in runs if re.search(r"\btorch\b", i.args)]
    assert torch_runs, "no pip install of torch"
    torch_ins = instructions[torch_runs[0]]
    assert pin in torch_ins.args.replace(" ", ""), f"torch pin differs from pyproject.toml ({pin})"
    assert re.search(r"--index-url[ =]https://download\.pytorch\.org/whl/cpu\b", torch_ins.args), (
        "torch must come from the CPU wheel index, or pip pulls the CUDA build"
    )

    project_runs = [n for n, i in runs if installs_project(i.args)]
    assert project_runs, "no `pip install .`"
    assert torch_runs[0] < project_runs[0], "torch must be installed before the project"
    assert not any(i.keyword == "FROM" for i in instructions[torch_runs[0] : project_runs[0]]), (
        "torch and the project must be installed in the same stage"
    )
    project_run = instructions[project_runs[0]].args
    assert not re.search(r"(^|\s)(-e|--editable)\s", project_run), "an editable install needs the sources at run time"


def test_dockerfile_copies_what_pip_install_needs(instructions, pyproject):
    project_run = min(n for n, i in enumerate(instructions) if i.keyword == "RUN" and installs_project(i.args))
    before = set()
    for n, ins in enumerate(instructions):
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        flags, sources = copy_sources(ins)
        if "from" in flags:
            continue
        for src in sources:
            matches = list(ROOT.glob(src)) if any(c in src for c in "*?[") else [ROOT / src]
            assert any(m.exists() for m in matches), f"line {ins.line}: COPY source {src} does not exist"
            if n < project_run:
                before.add(src)

    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for child in ROOT.iterdir():
        if (child / "__init__.py").is_file() and any(fnmatch.fnmatch(child.name, p) for p in include):
            needed.add(child.name)
    missing = needed - before
    assert not missing, f"not copied before `pip install .`: {sorted(missing)}"


def test_dockerignore_keeps_sources_and_drops_local_state(instructions):
    patterns = dockerignore_patterns()
    for junk in [".venv", ".git", ".recstream", "tests", "streams/__pycache__/x.pyc"]:
        assert dockerignored(junk, patterns), f"{junk} would be sent to the build context"
    sources = []
    for ins in instructions:
        if ins.keyword in {"COPY", "ADD"}:
            flags, srcs = copy_sources(ins)
            if "from" not in flags:
                sources += srcs
    for src in sources:
        path = ROOT / src
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        for f in files:
            rel = f.relative_to(ROOT).as_posix()
            assert not dockerignored(rel, patterns), f"{rel} is COPYed but .dockerignore excludes it"


def test_runtime_stage_runs_the_worker_offline_as_non_root(stages, instructions, services):
    final = stages[-1]
    env = stage_env(final)
    assert env.get("HF_HUB_OFFLINE") == "1" and env.get("TRANSFORMERS_OFFLINE") == "1"
    assert env.get("RECSTREAM_METRICS_HOST") == "0.0.0.0"
    data_dir = env.get("RECSTREAM_DATA_DIR")
    assert data_dir and data_dir.startswith("/"), "RECSTREAM_DATA_DIR must be an absolute path in the image"
    assert service_env(services["worker"]).get("RECSTREAM_DATA_DIR", data_dir) == data_dir

    users = [i.args.split(":")[0] for i in final["instructions"] if i.keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the worker must not run as root"
    runs = " ".join(i.args for i in final["instructions"] if i.keyword == "RUN")
    assert data_dir in runs and "chown" in runs, f"{data_dir} must exist and belong to the worker user"

    exposed = {p.split("/")[0] for i in final["instructions"] if i.keyword == "EXPOSE" for p in i.args.split()}
    assert str(DEFAULT_METRICS_PORT) in exposed

    entrypoint, cmd = final_entrypoint_and_cmd(stages)
    assert entrypoint + cmd == ["recstream", "worker"], f"the image runs {entrypoint + cmd}"

    # A virtual environment built in an earlier stage: the project must be installed into it,
    # and it must be copied to the same path (its scripts' shebangs are absolute) and be on PATH.
    for n, ins in enumerate(instructions):
        m = re.search(r"-m\s+venv\s+(\S+)", ins.args) if ins.keyword == "RUN" else None
        if not m:
            continue
        venv = m.group(1).rstrip("/")
        project_run = next(k for k, i in enumerate(instructions) if i.keyword == "RUN" and installs_project(i.args))
        build_path = ""
        for i in instructions[n:project_run]:
            assert i.keyword != "FROM", "the venv and `pip install .` are in different stages"
            if i.keyword == "ENV":
                build_path = env_pairs(i.args).get("PATH", build_path)
        pip_in_venv = f"{venv}/bin/pip" in instructions[project_run].args
        assert pip_in_venv or f"{venv}/bin" in build_path.split(":"), f"`pip install .` does not install into {venv}"
        copied = [split_flags(i.args)[1] for i in final["instructions"] if i.keyword == "COPY" and "from" in split_flags(i.args)[0]]
        assert any([w.rstrip("/") for w in words] == [venv, venv] for words in copied), (
            f"{venv} must be copied into the runtime stage at the same path"
        )
        assert f"{venv}/bin" in env.get("PATH", "").split(":"), f"{venv}/bin not on PATH: `recstream` not found"

    health = [i for i in final["instructions"] if i.keyword == "HEALTHCHECK"]
    if health:
        text = health[-1].args
        assert "curl" not in text and "wget" not in text, "python:3.11-slim has neither curl nor wget"
        assert str(DEFAULT_METRICS_PORT) in text or "RECSTREAM_METRICS_PORT" in text


# --------------------------------------------------------------------------------------------
# deploy/kafka/create-topics.sh and topics.json


def test_topics_json_layout(topics_layout):
    by_env = {t["name_env"]: t for t in topics_layout}
    assert len(by_env) == len(topics_layout) == 5
    assert {k: t["default_name"] for k, t in by_env.items()} == DEFAULT_TOPIC_NAMES
    for t in topics_layout:
        assert t["partitions"] == "events" or (isinstance(t["partitions"], int) and t["partitions"] > 0), t
    events, items = by_env["RECSTREAM_TOPIC_EVENTS"], by_env["RECSTREAM_TOPIC_ITEMS"]
    recs, dead = by_env["RECSTREAM_TOPIC_RECOMMENDATIONS"], by_env["RECSTREAM_TOPIC_DEAD_LETTER"]
    assert events["partitions"] == "events" and int(events["config"]["retention.ms"]) == 7 * DAY_MS
    assert items["partitions"] == 1 and items["config"]["cleanup.policy"] == "compact"
    assert recs["partitions"] == "events" and recs["config"]["cleanup.policy"] == "compact"
    assert dead["partitions"] == 1 and int(dead["config"]["retention.ms"]) == 14 * DAY_MS
    covisits = by_env["RECSTREAM_TOPIC_COVISITS"]
    # Every worker rebuilds its co-visitation store from this log: it must outlive a one-year half-life.
    assert covisits["partitions"] == "events" and int(covisits["config"]["retention.ms"]) >= 365 * DAY_MS


def test_create_topics_sh_is_executable_posix_sh():
    text = CREATE_TOPICS.read_text()
    assert text.startswith("#!/bin/sh\n"), "POSIX sh: the broker image has no guarantee of bash"
    assert re.search(r"^set -eu$", text, re.M), "set -eu missing"
    assert CREATE_TOPICS.stat().st_mode & stat.S_IXUSR, "create-topics.sh is not executable"
    proc = subprocess.run(["sh", "-n", str(CREATE_TOPICS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics\.sh\}", text), (
        "default kafka-topics.sh path must be the apache/kafka image's /opt/kafka/bin/kafka-topics.sh"
    )


def test_create_topics_sh_passes_shellcheck(require_tool):
    require_tool("shellcheck")
    proc = subprocess.run(["shellcheck", "--shell=sh", str(CREATE_TOPICS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_create_topics_sh_creates_the_layout_of_topics_json(tmp_path, topics_layout):
    proc, calls = run_create_topics(tmp_path)
    assert proc.returncode == 0, proc.stderr
    parsed = [parse_kafka_topics_call(c) for c in calls]
    for call in parsed:
        assert call["flags"] == {"--create", "--if-not-exists"}, call
        assert call["bootstrap-server"] == "kafka:29092"
        assert call["replication-factor"] == "1"
    got = {c["topic"]: {"partitions": c["partitions"], "config": c["config"]} for c in parsed}
    assert len(got) == len(parsed), "a topic is created twice"
    assert got == expected_topics(topics_layout, DEFAULT_EVENTS_PARTITIONS)
    for name in got:
        assert name in proc.stdout, f"the script does not say what it did for {name}"


def test_create_topics_sh_honours_its_environment(tmp_path, topics_layout):
    names = {env: f"custom.{env.lower()}" for env in DEFAULT_TOPIC_NAMES}
    proc, calls = run_create_topics(
        tmp_path, {"BOOTSTRAP": "broker-a:1234", "EVENTS_PARTITIONS": "7", **names}
    )
    assert proc.returncode == 0, proc.stderr
    parsed = [parse_kafka_topics_call(c) for c in calls]
    assert {c["bootstrap-server"] for c in parsed} == {"broker-a:1234"}
    got = {c["topic"]: {"partitions": c["partitions"], "config": c["config"]} for c in parsed}
    assert got == expected_topics(topics_layout, 7, names)


def test_create_topics_sh_stops_at_the_first_failure(tmp_path):
    proc, calls = run_create_topics(tmp_path, stub_rc=3)
    assert proc.returncode != 0, "a failed kafka-topics.sh must fail the topics job (and so the worker's start)"
    assert len(calls) == 1


# --------------------------------------------------------------------------------------------
# Prometheus and Grafana in docker-compose.yml

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"


def _bind_target(service: dict, source: Path) -> str:
    mounts = [m for m in service_mounts(service) if m["type"] == "bind" and (ROOT / m["source"]).resolve() == source]
    assert mounts, f"{source.relative_to(ROOT)} is not mounted: {service_mounts(service)}"
    assert mounts[0]["read_only"], f"{source.relative_to(ROOT)} must be mounted read-only"
    return mounts[0]["target"]


def test_prometheus_scrapes_every_worker_replica_with_the_projects_config(services):
    prometheus, worker = services["prometheus"], services["worker"]
    assert str(prometheus.get("image", "")).startswith("prom/prometheus:")
    config_dir = _bind_target(prometheus, PROMETHEUS_DIR)
    assert f"--config.file={config_dir}/prometheus.yml" in as_argv(prometheus.get("command"))
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "recstream")
    dns = job["dns_sd_configs"][0]
    metrics_port = int(service_env(worker).get("RECSTREAM_METRICS_PORT", DEFAULT_METRICS_PORT))
    assert dns["names"] == ["worker"] and dns["port"] == metrics_port, "every replica of the worker service, on its metrics port"
    assert ("9090", 9090) in published_ports(prometheus)


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboard(services):
    grafana = services["grafana"]
    assert str(grafana.get("image", "")).startswith("grafana/grafana:")
    assert _bind_target(grafana, GRAFANA_DIR / "provisioning") == "/etc/grafana/provisioning"
    dashboards_dir = _bind_target(grafana, GRAFANA_DIR / "dashboards")
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "recstream.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == dashboards_dir
    source = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    datasource = source["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "recstream.json").read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {datasource["uid"]}
    home = service_env(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home == f"{dashboards_dir}/recstream.json"


def test_published_ports_are_loopback_unless_the_operator_says_otherwise(services):
    """Kafka has no authentication here and the read API's reasons reveal purchases: by default nothing
    is published beyond this machine (RECSTREAM_PUBLISH_ADDRESS=0.0.0.0 opts in)."""
    entries = [(name, str(p)) for name, svc in services.items() for p in svc.get("ports") or []]
    assert entries, "the stack publishes its ports"
    for name, entry in entries:
        assert entry.startswith("${RECSTREAM_PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name} publishes {entry} on every interface"


def test_grafana_has_no_admin_password_that_works_by_default(services):
    password = service_env(services["grafana"])["GF_SECURITY_ADMIN_PASSWORD"]
    # `${VAR:?message}`: compose stops with the message when the variable is unset or empty.
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), password


def test_worker_serves_the_read_api_outside_its_container(services, stages):
    worker = services["worker"]
    env = {**stage_env(stages[-1]), **service_env(worker)}
    assert env.get("RECSTREAM_HTTP_BIND") == "0.0.0.0", "on 127.0.0.1 the read API is unreachable from outside"
    assert int(env["RECSTREAM_HTTP_PORT"]) in [c for _, c in published_ports(worker)]
