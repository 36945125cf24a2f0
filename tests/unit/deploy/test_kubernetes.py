"""Offline checks of deploy/kubernetes: every manifest against the Kubernetes schemas, and against the code.

No cluster is needed: the schemas ship with the kubernetes-validate package. The manifests are also
held to what the worker really reads and serves (its settings, its probe endpoints, its ports) and to
the measured figures they are sized from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes release still supported upstream when this was written, and the newest the
# validator knows: the manifests must be valid for both.
VERSIONS = ["1.33.0", kubernetes_validate.utils.latest_version()]


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def config() -> dict[str, str]:
    (cm,) = [d for d in by_kind("ConfigMap") if d["metadata"]["name"] == "recstream-config"]
    return cm["data"]


def worker_container() -> dict[str, Any]:
    (sts,) = by_kind("StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    docs = documents()
    assert {d["kind"] for _, d in docs} >= {"StatefulSet", "Service", "ConfigMap", "Job"}
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} ({doc['kind']}) is not valid Kubernetes {version}: {'.'.join(map(str, exc.path))}: "
                        f"{exc.message}")


def test_kustomization_applies_exactly_the_manifests() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_every_recstream_variable_is_a_setting() -> None:
    known = {f"RECSTREAM_{name.upper()}" for name in Settings.model_fields}
    named: set[str] = set(config())
    for _, doc in documents():
        named |= set(re.findall(r"\bRECSTREAM_[A-Z0-9_]+", yaml.safe_dump(doc)))
    unknown = {n for n in named if n.startswith("RECSTREAM_")} - known
    assert not unknown, f"not settings of the worker: {sorted(unknown)}"
    # And the ConfigMap's values are ones the settings accept.
    Settings(**{k[len("RECSTREAM_"):].lower(): v for k, v in config().items()})


def test_each_pod_has_a_stable_identity_and_address() -> None:
    (sts,) = by_kind("StatefulSet")
    env = {e["name"]: e for e in worker_container()["env"]}
    assert env["RECSTREAM_WORKER_ID"]["value"] == "$(POD_NAME)"
    assert env["RECSTREAM_KAFKA_GROUP_INSTANCE_ID"]["value"] == "$(POD_NAME)"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    headless = next(s for s in by_kind("Service") if s["metadata"]["name"] == sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert env["RECSTREAM_HTTP_ADVERTISED_HOST"]["value"].startswith(f"$(POD_NAME).{sts['spec']['serviceName']}.")
    claim = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in worker_container()["volumeMounts"]}
    assert mounts[claim] == config()["RECSTREAM_DATA_DIR"], "each pod's own volume holds its data dir"


def _route_paths() -> set[str]:
    source = (ROOT / "streams" / "worker" / "http_api.py").read_text()
    return set(re.findall(r'@app\.page\("([^"]+)"\)', source))


def test_probes_call_endpoints_the_worker_serves_on_its_port() -> None:
    container = worker_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(config()["RECSTREAM_HTTP_PORT"])
    assert ports["metrics"] == int(config()["RECSTREAM_METRICS_PORT"])
    routes = _route_paths()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes, f"{probe}: {get['path']} is not a route of the read API"
        assert get["port"] == "http"


def test_prometheus_finds_the_metrics_port() -> None:
    (sts,) = by_kind("StatefulSet")
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == int(config()["RECSTREAM_METRICS_PORT"])


def _meta_label(label: str) -> str:
    """Prometheus' kubernetes_sd name for a pod label: non-alphanumerics become underscores."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def test_the_scrape_job_keeps_exactly_the_workers_metrics_port() -> None:
    """Applies the job's relabelling the way Prometheus does to the worker pod's own labels and ports.

    (Debian's promtool is built without Kubernetes discovery, so it cannot parse this job; this
    follows the rules instead: joined source labels, fully anchored regexes, keep.)"""
    (cm,) = [d for d in by_kind("ConfigMap") if d["metadata"]["name"] == "recstream-prometheus-scrape"]
    (job,) = yaml.safe_load(cm["data"]["recstream-scrape.yml"])
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    (sts,) = by_kind("StatefulSet")
    labels = sts["spec"]["template"]["metadata"]["labels"]

    def kept(port_name: str, pod_labels: dict[str, str]) -> bool:
        target = {_meta_label(k): v for k, v in pod_labels.items()}
        target["__meta_kubernetes_pod_container_port_name"] = port_name
        for rule in job["relabel_configs"]:
            value = rule.get("separator", ";").join(target.get(lbl, "") for lbl in rule["source_labels"])
            if rule.get("action", "replace") == "keep" and not re.fullmatch(rule["regex"], value):
                return False
        return True

    ports = [p["name"] for p in worker_container()["ports"]]
    assert [p for p in ports if kept(p, labels)] == ["metrics"]
    assert not kept("metrics", {**labels, "app.kubernetes.io/component": "topics"}), "not the topics job"


def test_there_are_no_more_workers_than_partitions() -> None:
    (sts,) = by_kind("StatefulSet")
    assert 1 <= sts["spec"]["replicas"] <= int(config()["RECSTREAM_EVENTS_PARTITIONS"])


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * units[unit] if unit else float(number) / 2**20


def test_memory_is_sized_from_the_measured_resident_set() -> None:
    measured = json.loads((ROOT / "docs" / "bench.json").read_text())["worker_rss_mb"]
    resources = worker_container()["resources"]
    assert _mebibytes(resources["requests"]["memory"]) >= measured * 1e6 / 2**20 * 1.25, "a quarter's headroom"
    assert _mebibytes(resources["limits"]["memory"]) >= _mebibytes(resources["requests"]["memory"])
