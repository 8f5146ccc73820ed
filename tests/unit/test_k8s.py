"""ops/k8s is read, not applied (no cluster here): every manifest parses, the core kinds pass the
Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields fail), the kustomizations
name files that exist, and the KEDA ScaledObjects (a CRD the validator has no schema for) are
checked field by field against what docqueue exports.

Both kustomizations are rendered by :func:`render` (resources, JSON 6902 patches with targets, image
tags: the subset ops/k8s uses), so the checks run without kustomize; where ``kubectl`` or
``kustomize`` is installed, its own rendering must come out the same.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from docqueue.names import TASK_TYPES
from docqueue.settings import Settings
from producer.cli import main
from tests.conftest import ROOT

K8S = ROOT / "ops" / "k8s"
KUBERNETES_VERSION = "1.30"
CRD_KINDS = {"ScaledObject"}
#: The keys of the Secret the manifests expect (created by the operator, documented in the README).
SECRET_NAME = "docqueue-secrets"
SECRET_KEYS = {"redis-url", "database-url", "flower-basic-auth", "webhook-secret"}
#: Settings another branch of issue 13 adds (worker metrics port); accepted while Settings lacks them.
PENDING_SETTINGS = {"DOCQUEUE_METRICS_PORT"}


# ------------------------------------------------------------------------------ rendering
def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def _apply_op(doc: Any, op: dict[str, Any]) -> None:
    *parents, last = _pointer(op["path"])
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if op["op"] == "replace":
        present = (int(last) < len(node)) if isinstance(node, list) else last in node
        assert present, f"replace of a missing path {op['path']}"
    if op["op"] not in ("add", "replace"):
        raise AssertionError(f"op {op['op']} is not used by ops/k8s")
    if isinstance(node, list):
        node[int(last)] = copy.deepcopy(op["value"])
    else:
        node[last] = copy.deepcopy(op["value"])


def _selected(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    if "kind" in target and doc["kind"] != target["kind"]:
        return False
    if "name" in target and not re.fullmatch(target["name"], doc["metadata"]["name"]):
        return False
    labels = doc["metadata"].get("labels", {})
    for term in filter(None, (t.strip() for t in target.get("labelSelector", "").split(","))):
        key, _, value = term.partition("=")
        if key not in labels or (value and labels[key] != value):
            return False
    return True


def render(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        assert path.exists(), f"{directory}: resource {entry} does not exist"
        docs += render(path) if path.is_dir() else _docs(path)
    for patch in kustomization.get("patches", []):
        ops = yaml.safe_load((directory / patch["path"]).read_text())
        chosen = [d for d in docs if _selected(d, patch["target"])]
        assert chosen, f"{directory}: patch {patch['path']} matches nothing"
        for doc in chosen:
            for op in ops:
                _apply_op(doc, op)
    for image in kustomization.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                if container["image"].split(":")[0] == image["name"] and ":" not in container["image"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def _kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


OVERLAYS = {"base": K8S / "base", "gpu": K8S / "overlays" / "gpu"}


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(OVERLAYS[request.param])


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _task_workers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"]["docqueue.io/task"]: d for d in _by_kind(docs, "Deployment").values()
            if d["metadata"]["labels"].get("docqueue.io/role") == "task-worker"}


def _env(doc: dict[str, Any], docs: list[dict[str, Any]], container: int = 0) -> dict[str, Any]:
    """The container's environment: its ConfigMaps (envFrom, in order), then its own env."""
    c = _containers(doc)[container]
    maps = _by_kind(docs, "ConfigMap")
    env: dict[str, Any] = {}
    for source in c.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in maps, f"{doc['metadata']['name']}: no ConfigMap {name}"
        env.update(maps[name]["data"])
    for item in c.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


# -------------------------------------------------------------------------------- the checks
def test_every_manifest_parses_and_every_kustomization_names_files_that_exist() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        assert _docs(path), path  # parses, not empty
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        assert spec["kind"] == "Kustomization"
        for entry in spec.get("resources", []):
            target = kustomization.parent / entry
            assert target.is_file() or (target / "kustomization.yaml").is_file(), f"{kustomization}: {entry}"
        for patch in spec.get("patches", []):
            assert (kustomization.parent / patch["path"]).is_file(), f"{kustomization}: {patch['path']}"
    # every manifest file is used by a kustomization (nothing lies around unapplied)
    used = {kustomization.parent / e for kustomization in K8S.rglob("kustomization.yaml")
            for key in ("resources", "patches")
            for e in (p["path"] if isinstance(p, dict) else p
                      for p in yaml.safe_load(kustomization.read_text()).get(key, []))}
    loose = [p for p in files if p.name != "kustomization.yaml" and p not in used]
    assert not loose, f"manifests no kustomization uses: {loose}"


def test_core_kinds_pass_the_kubernetes_schemas(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Job", "ConfigMap", "PersistentVolumeClaim", "ScaledObject"} <= kinds
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            raise AssertionError(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}") from e


def test_our_rendering_matches_kustomize(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    tool = _kustomize()
    if tool is None:
        pytest.skip("neither kustomize nor kubectl is installed; the manifests are checked as rendered here")
    name, docs = rendered
    out = subprocess.run([*tool, str(OVERLAYS[name])], capture_output=True, text=True, timeout=120, check=True)
    theirs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out.stdout) if d}
    ours = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert theirs.keys() == ours.keys()
    for key, doc in ours.items():
        assert theirs[key] == doc, key


def test_one_worker_deployment_per_task_consuming_its_queue(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    workers = _task_workers(docs)
    assert sorted(workers) == sorted(TASK_TYPES)
    for task, deployment in workers.items():
        (container,) = _containers(deployment)
        args = container["args"]
        assert args[:1] == ["worker"] and args[args.index("--queues") + 1] == task
        for probe in ("startupProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == ["docqueue", "worker", "--check"], (task, probe)
        assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 300
        env = _env(deployment, docs)
        limits = container["resources"].get("limits", {})
        if name == "gpu":
            assert limits["nvidia.com/gpu"] == 1, task  # one GPU per pod ...
            assert env["DOCQUEUE_POOL"] == "solo" and env["DOCQUEUE_CONCURRENCY"] == "1"  # ... one process on it
            assert env["DOCQUEUE_DEVICE"] == "cuda" and container["image"].endswith("-cuda")
            assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0  # no extra GPU to roll
        else:
            assert "nvidia.com/gpu" not in limits
            assert env["DOCQUEUE_DEVICE"] == "cpu" and env["DOCQUEUE_POOL"] == "prefork"
            # concurrency 0 counts the CPU affinity, which a CFS limit is not: processes = CPU limit
            assert int(env["DOCQUEUE_CONCURRENCY"]) == int(limits["cpu"])
        assert env["DOCQUEUE_METRICS_PORT"] == "9810"
        assert {"containerPort": 9810, "name": "metrics"} in container["ports"]


def test_webhooks_beat_migrate_metrics_flower(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    deployments = _by_kind(docs, "Deployment")
    webhooks = _containers(deployments["docqueue-webhooks"])[0]
    assert webhooks["args"] == ["worker", "--queues", "webhooks", "--concurrency", "2"]
    assert "nvidia.com/gpu" not in webhooks["resources"].get("limits", {})
    assert not any(m["mountPath"] == "/models" for m in webhooks.get("volumeMounts", []))
    # without a signing secret the webhooks worker refuses its only queue and exits (CrashLoopBackOff)
    (secret,) = [e for e in webhooks["env"] if e["name"] == "DOCQUEUE_WEBHOOK_SECRET"]
    assert secret["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": "webhook-secret"}

    beat = deployments["docqueue-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    assert _containers(beat)[0]["args"] == ["beat"]

    (job,) = _by_kind(docs, "Job").values()
    assert _containers(job)[0]["args"] == ["db", "upgrade"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")

    metrics = deployments["docqueue-metrics"]
    assert _containers(metrics)[0]["args"] == ["metrics", "serve", "--port", "9809"]
    flower = deployments["docqueue-flower"]
    assert re.fullmatch(r"mher/flower:\d+\.\d+(\.\d+)?", _containers(flower)[0]["image"])
    assert _env(flower, docs)["FLOWER_ENABLE_EVENTS"] == "false"

    services = _by_kind(docs, "Service")
    for service in services.values():  # each Service selects a Deployment's pods, on a port they open
        selector = service["spec"]["selector"]
        (pods,) = [d for d in deployments.values()
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        names = {p["name"]: p["containerPort"] for c in _containers(pods) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, (service["metadata"]["name"], port)
    assert {p["port"] for p in services["docqueue-metrics"]["spec"]["ports"]} == {9809}
    assert {p["port"] for p in services["docqueue-flower"]["spec"]["ports"]} == {5555}


def test_deployment_selectors_match_their_pods_and_are_distinct(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    deployments = list(_by_kind(docs, "Deployment").values())
    for d in deployments:
        selector = d["spec"]["selector"]["matchLabels"]
        assert selector.items() <= d["spec"]["template"]["metadata"]["labels"].items(), d["metadata"]["name"]
        others = [o for o in deployments if o is not d
                  and selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()]
        assert not others, f"{d['metadata']['name']} would also select the pods of {others[0]['metadata']['name']}"


def test_secrets_are_external_references_only(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets are created by the operator, not shipped"
    refs = set()
    for doc in docs:
        for container in _containers(doc):
            for item in container.get("env", []):
                if "valueFrom" in item:
                    ref = item["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == SECRET_NAME
                    refs.add(ref["key"])
                elif re.search(r"PASSWORD|SECRET|TOKEN|_AUTH|_URL$", item["name"]):
                    raise AssertionError(f"{item['name']} is written inline in {doc['metadata']['name']}")
    for config in _by_kind(docs, "ConfigMap").values():
        assert not any(re.search(r"PASSWORD|SECRET|TOKEN|_AUTH|REDIS_URL|DATABASE_URL", k) for k in config["data"])
    assert refs == SECRET_KEYS
    readme = (K8S / "README.md").read_text()
    for key in SECRET_KEYS:
        assert key in readme, f"ops/k8s/README.md does not say how to create secret key {key}"


def test_docqueue_environment_names_are_real(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Every DOCQUEUE_* a manifest sets is a setting or an option's env var of the command it runs."""
    _, docs = rendered
    known = {f"DOCQUEUE_{n.upper()}" for n in Settings.model_fields} | PENDING_SETTINGS
    ctx = main.make_context("docqueue", ["worker"], resilient_parsing=True)
    worker = main.get_command(ctx, "worker")
    assert worker is not None
    known |= {str(p.envvar) for p in worker.params if p.envvar}
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        env = _env(doc, docs)
        unknown = {k for k in env if k.startswith("DOCQUEUE_") and k not in known}
        assert not unknown, f"{doc['metadata']['name']} sets variables docqueue does not read: {unknown}"
        values = {k[len("DOCQUEUE_"):].lower(): v for k, v in env.items()
                  if k.startswith("DOCQUEUE_") and k[len("DOCQUEUE_"):].lower() in Settings.model_fields
                  and isinstance(v, str)}  # a secretKeyRef's value is the operator's
        Settings(**values)  # every value parses


def test_scaled_objects_scale_each_task_on_its_exported_depth(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    workers = _task_workers(docs)
    scaled = _by_kind(docs, "ScaledObject")
    assert len(scaled) == len(TASK_TYPES)
    targets = {}
    for obj in scaled.values():
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        spec = obj["spec"]
        ref = spec["scaleTargetRef"]
        assert ref.get("kind", "Deployment") == "Deployment" and ref.get("apiVersion", "apps/v1") == "apps/v1"
        task = next(t for t, d in workers.items() if d["metadata"]["name"] == ref["name"])
        targets[task] = obj
        assert isinstance(spec["minReplicaCount"], int) and isinstance(spec["maxReplicaCount"], int)
        # at least one consumer stays, or submit would warn (and --require-worker refuse)
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert isinstance(spec["pollingInterval"], int) and isinstance(spec["cooldownPeriod"], int)
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus"
        meta = trigger["metadata"]
        assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values are strings"
        assert re.fullmatch(r"https?://[^\s/]+(:\d+)?(/\S*)?", meta["serverAddress"])
        assert float(meta["threshold"]) > 0 and float(meta.get("activationThreshold", "0")) >= 0
        # the exported depth counts unacked messages and every priority list: summed over states,
        # not filtered to ready
        assert meta["query"].replace(" ", "") == f'sum(docqueue_queue_messages{{queue="{task}"}})'
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300  # models are slow to load
        if name == "gpu":
            assert spec["maxReplicaCount"] >= 1
    assert sorted(targets) == sorted(TASK_TYPES)
