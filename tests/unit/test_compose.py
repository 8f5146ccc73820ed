"""docker-compose.yml is read, not run (no Docker engine here): its structure, images, health
checks, start order, environment and commands must match what docqueue actually offers."""

from __future__ import annotations

import json
import re
from typing import Any

import click
import pytest
import yaml

from docqueue.settings import Settings
from producer.cli import main
from tests.conftest import ROOT

#: Commands another branch of issue 13 adds (`docqueue beat` and `schedule`: schedules; `metrics serve`:
#: metrics): until merged they are not parsed; once they exist they are checked like every other.
PENDING_COMMANDS = {"beat", "schedule", "metrics"}
#: Settings another branch adds (worker metrics port); accepted while Settings lacks them.
PENDING_SETTINGS = {"DOCQUEUE_METRICS_PORT"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _docqueue_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image", "").startswith("docqueue:")}


def test_services_images_and_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "postgres", "migrate", "worker"} <= set(services)
    assert re.fullmatch(r"redis:\d+(\.\d+)*-alpine", services["redis"]["image"])
    assert re.fullmatch(r"postgres:\d+(\.\d+)*-alpine", services["postgres"]["image"])
    for name in ("redis", "postgres"):
        assert services[name]["healthcheck"]["test"], name
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    # the image is built from a Dockerfile that exists
    for service in _docqueue_services(compose).values():
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "worker-gpu"):
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"


def test_environment_names_are_real_settings(compose: dict[str, Any]) -> None:
    known = set()
    for name, field in Settings.model_fields.items():
        known.add(f"DOCQUEUE_{name.upper()}")
        alias = field.validation_alias
        if alias is not None:
            known.update(str(a) for a in getattr(alias, "choices", [alias]))
    for name, service in _docqueue_services(compose).items():
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://docqueue:") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD}@redis:6379/0"
        unknown = {k for k in env if k.startswith("DOCQUEUE_") and k not in known | PENDING_SETTINGS}
        assert not unknown, f"{name} sets variables docqueue does not read: {unknown}"
        # every value parses as docqueue settings would parse it (a required ${VAR:?} is the operator's)
        Settings(**{k.lower()[len("docqueue_"):]: v for k, v in env.items()
                    if k.startswith("DOCQUEUE_") and k.lower()[len("docqueue_"):] in Settings.model_fields
                    and not _REQUIRED_VAR.fullmatch(str(v))})


def _parse_cli(where: str, args: list[str]) -> click.Context | None:
    """Parse ``docqueue ARGS`` as the CLI would (unknown commands and options raise); None for a
    command of another branch not merged yet (:data:`PENDING_COMMANDS`)."""
    ctx = main.make_context("docqueue", list(args), resilient_parsing=True)
    command: click.Command = main
    rest = list(args)
    while isinstance(command, click.Group) and rest:
        sub = command.get_command(ctx, rest[0])
        if sub is None and command is main and rest[0] in PENDING_COMMANDS:
            return None
        assert sub is not None, f"{where}: unknown command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command.make_context(command.name or "", list(rest))  # raises on unknown options


def test_commands_are_real_cli_commands(compose: dict[str, Any]) -> None:
    for name, service in _docqueue_services(compose).items():
        _parse_cli(name, list(service["command"]))
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "docqueue"]:  # healthchecks that call our CLI are real commands too
            _parse_cli(f"{name} healthcheck", test[2:])


def test_gpu_worker_reserves_a_gpu_and_uses_it(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert gpu["command"][gpu["command"].index("--device") + 1] == gpu["environment"]["DOCQUEUE_DEVICE"]


def test_workers_consume_every_task_queue_at_the_recommended_concurrency() -> None:
    """Both worker services once consumed only classify: summarize/translate/review jobs never ran."""
    from docqueue.names import TASK_TYPES

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("worker", "worker-gpu"):
        command = services[name]["command"]
        queues = command[command.index("--queues") + 1].split(",")
        assert sorted(queues) == sorted(TASK_TYPES), (name, queues)
    cpu = services["worker"]["command"]
    assert cpu[cpu.index("--concurrency") + 1] == "0"


# ------------------------------------------------------------------------------- the whole stack
#: The metrics agreed for issue 13 (workers on DOCQUEUE_METRICS_PORT, `docqueue metrics serve` for
#: the queue side), with their labels: the dashboard may use these and nothing else.
AGREED_METRICS: dict[str, set[str]] = {
    "docqueue_documents_total": {"task", "model", "status", "error_kind"},
    "docqueue_engine_batch_size": set(),
    "docqueue_engine_padded_tokens": set(),
    "docqueue_engine_batch_seconds": {"task", "model"},
    "docqueue_queue_wait_seconds": {"task"},
    "docqueue_model_load_seconds": {"task", "model"},
    "docqueue_resident_models": {"task"},
    "docqueue_gpu_memory_allocated_bytes": {"device"},
    "docqueue_gpu_memory_reserved_bytes": {"device"},
    "docqueue_tokens_total": {"task", "model"},
    "docqueue_queue_messages": {"queue", "state"},
    "docqueue_batches": {"state"},
    "docqueue_document_outcomes_total": {"task", "status", "error_kind"},
    "docqueue_loader_failures_total": {"task", "error_kind"},
    "docqueue_job_retries_total": {"task"},
    "docqueue_job_latency_seconds": {"task"},
    "docqueue_worker_up": {"queues"},
    "docqueue_workers": {"queue"},
    "docqueue_dead_letters": set(),
}
HISTOGRAMS = {"docqueue_engine_batch_size", "docqueue_engine_padded_tokens", "docqueue_engine_batch_seconds",
              "docqueue_queue_wait_seconds", "docqueue_model_load_seconds", "docqueue_job_latency_seconds"}
#: Labels Prometheus adds to every scraped series (and the relabelled compose service name).
TARGET_LABELS = {"instance", "job", "service"}
LONG_RUNNING_HEALTH_GATES = {"service_healthy", "service_completed_successfully"}
WEBHOOKS_QUEUE = "webhooks"


def _worker_queues(service: dict[str, Any]) -> list[str]:
    command = [str(c) for c in service.get("command", [])]
    if command[:1] != ["worker"]:
        return []
    return command[command.index("--queues") + 1].split(",") if "--queues" in command else []


def test_every_queue_is_consumed_without_the_gpu_profile(compose: dict[str, Any]) -> None:
    """The default stack (no profile) runs every task and delivers webhooks."""
    from docqueue.names import TASK_TYPES

    consumed = {q for s in _docqueue_services(compose).values() if not s.get("profiles")
                for q in _worker_queues(s)}
    assert consumed >= set(TASK_TYPES) | {WEBHOOKS_QUEUE}, consumed
    webhooks = next(s for s in compose["services"].values() if _worker_queues(s) == [WEBHOOKS_QUEUE])
    assert webhooks["command"][webhooks["command"].index("--concurrency") + 1] == "2"
    assert "models:/models" not in webhooks.get("volumes", [])  # light: no models


def test_every_service_is_health_gated_and_restarts_on_failure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        one_shot = service.get("restart") == "no"
        if not one_shot:
            assert service.get("restart") == "on-failure", name
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert isinstance(spec, dict) and spec.get("condition") in LONG_RUNNING_HEALTH_GATES, (name, dep)
            if spec["condition"] == "service_healthy":
                assert services[dep].get("healthcheck", {}).get("test"), f"{name} waits for {dep}'s health"
            else:
                assert services[dep].get("restart") == "no", f"{dep} must be a one-shot for {name}"
    # everything that talks to the broker waits for it; everything that uses the schema, for migrate
    for name, service in _docqueue_services(compose).items():
        if name == "migrate":
            continue
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert services["flower"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_worker_healthcheck_is_docqueue_worker_check(compose: dict[str, Any]) -> None:
    workers = {n: s for n, s in _docqueue_services(compose).items() if s["command"][0] == "worker"}
    assert {"worker", "worker-gpu"} <= set(workers) and len(workers) >= 3
    for name, service in workers.items():
        assert service["healthcheck"]["test"] == ["CMD", "docqueue", "worker", "--check"], name
        ctx = _parse_cli(name, ["worker", "--check"])
        assert ctx is not None and ctx.params["check"] is True
        # the start period covers model loading before the worker's first record
        assert re.fullmatch(r"\d+[ms]", service["healthcheck"]["start_period"]), name


def test_redis_requires_a_password_and_keeps_an_aof(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--requirepass") + 1] == "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "PONG" in " ".join(compose["services"]["redis"]["healthcheck"]["test"])  # NOAUTH exits 0 too


_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_AUTH|API_KEY", re.I)
_REQUIRED_VAR = re.compile(r"\$\{[A-Z][A-Z0-9_]*:\?[^}]*\}")
_URL_PASSWORD = re.compile(r"://[^/@\s:]*:([^@/\s]+)@")


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in _strings(v, f"{path}[{i}]")]
    return [(path, str(node))] if isinstance(node, str) else []


def test_no_secret_is_written_inline() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    raw = yaml.safe_load(text)
    for path, value in _strings(raw["services"]):
        for password in _URL_PASSWORD.findall(value):
            assert _REQUIRED_VAR.fullmatch(password), f"{path}: password in a URL must be ${{VAR:?}}: {value}"
        key = path.rsplit(".", 1)[-1]
        if _SECRET_NAME.search(key):
            assert _REQUIRED_VAR.search(value), f"{path}: secrets only through ${{VAR:?}}"
            if ":" in value and key.endswith("BASIC_AUTH"):
                assert _REQUIRED_VAR.fullmatch(value.split(":", 1)[1]), path
    # every interpolation of a secret-looking variable is the required form, never a default
    for name, form in re.findall(r"\$\{([A-Z0-9_]+)([^}]*)\}", text):
        if _SECRET_NAME.search(name):
            assert form.startswith(":?"), f"${{{name}{form}}} must fail when unset (use ${{{name}:?...}})"


def _metrics_port(service: dict[str, Any]) -> int | None:
    env = service.get("environment", {})
    if "DOCQUEUE_METRICS_PORT" in env:
        return int(env["DOCQUEUE_METRICS_PORT"])
    command = [str(c) for c in service.get("command", [])]
    if command[:2] == ["metrics", "serve"]:
        return int(command[command.index("--port") + 1])
    return None


def _published(service: dict[str, Any]) -> set[int]:
    ports = {int(p) for p in service.get("expose", [])}
    ports |= {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}
    return ports


def test_prometheus_scrapes_every_metrics_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mounts = services["prometheus"]["volumes"]
    config_mount = next(m for m in mounts if m.endswith(":/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((ROOT / config_mount.split(":")[0]).read_text())
    scraped: set[str] = set()
    for job in config["scrape_configs"]:
        targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1]))
                   for static in job.get("static_configs", []) for t in static["targets"]]
        targets += [(n, int(sd["port"])) for sd in job.get("dns_sd_configs", []) for n in sd["names"]]
        for host, port in targets:
            if host == "localhost":  # Prometheus itself
                assert port == 9090
                continue
            assert host in services, f"{job['job_name']}: no service {host}"
            assert _metrics_port(services[host]) == port, f"{host} serves metrics on {_metrics_port(services[host])}"
            assert port in _published(services[host]), f"{host} does not expose {port}"
            scraped.add(host)
    exporters = {n for n, s in services.items() if _metrics_port(s) is not None}
    assert exporters == scraped, f"not scraped: {exporters - scraped}"
    assert {"worker", "metrics"} <= scraped
    assert _metrics_port(services["worker"]) == 9810 and _metrics_port(services["metrics"]) == 9809


def _mount(service: dict[str, Any], source: str) -> str:
    """The container path where ``source`` (a path in the repository) is mounted."""
    for volume in service["volumes"]:
        parts = volume.split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{source} is not mounted")


def test_grafana_provisioning_and_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert _mount(grafana, "./ops/grafana/provisioning") == "/etc/grafana/provisioning"
    dashboards_at = _mount(grafana, "./ops/grafana/dashboards")
    (datasources,) = [yaml.safe_load(p.read_text())
                      for p in sorted((ROOT / "ops/grafana/provisioning/datasources").glob("*.yml"))]
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert 9090 in _published(compose["services"]["prometheus"])
    (providers,) = [yaml.safe_load(p.read_text())
                    for p in sorted((ROOT / "ops/grafana/provisioning/dashboards").glob("*.yml"))]
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == dashboards_at
    files = sorted((ROOT / "ops/grafana/dashboards").glob("*.json"))
    assert files
    for path in files:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], (path.name, panel["title"])


_METRIC = re.compile(r"\b(docqueue_[a-z_]+)\b")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"\{([^}]*)\}")


def _base(metric: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if metric.endswith(suffix) and metric[: -len(suffix)] in HISTOGRAMS:
            return metric[: -len(suffix)]
    return metric


def test_dashboard_queries_use_the_agreed_metrics_and_labels() -> None:
    dashboard = json.loads((ROOT / "ops/grafana/dashboards/docqueue.json").read_text())
    exprs = {panel["title"]: [t["expr"] for t in panel["targets"]] for panel in dashboard["panels"]}
    used: set[str] = set()
    for title, queries in exprs.items():
        assert queries, title
        for expr in queries:
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
            names = {_base(m) for m in _METRIC.findall(expr)}
            assert names, f"{title}: no docqueue metric in {expr}"
            unknown = names - set(AGREED_METRICS)
            assert not unknown, f"{title}: {unknown} are not metrics docqueue exports"
            allowed = set().union(*(AGREED_METRICS[n] for n in names)) | TARGET_LABELS
            if names & HISTOGRAMS:
                allowed.add("le")
            labels = {lbl.strip() for group in _GROUPING.findall(expr) for lbl in group.split(",") if lbl.strip()}
            labels |= {m.split("=")[0].rstrip("!~").strip() for block in _MATCHER.findall(expr)
                       for m in block.split(",") if "=" in m}
            assert labels <= allowed, f"{title}: labels {labels - allowed} are not labels of {names}"
            if "histogram_quantile" in expr:
                assert "_bucket" in expr and "le" in labels, expr
            used |= names
    # the panels the issue asks for
    joined = " ".join(q for qs in exprs.values() for q in qs)
    # throughput and failure rate from the counter whose series exist at 0 from a worker's start
    assert "docqueue_document_outcomes_total" in used and 'status="failed"' in joined
    assert "docqueue_documents_total" not in used, "its series are born at their first increment"
    assert {"docqueue_queue_messages", "docqueue_queue_wait_seconds", "docqueue_gpu_memory_allocated_bytes",
            "docqueue_gpu_memory_reserved_bytes", "docqueue_loader_failures_total", "docqueue_job_retries_total",
            "docqueue_job_latency_seconds", "docqueue_workers", "docqueue_dead_letters"} <= used
    assert any("by (task)" in q and "docqueue_document_outcomes_total" in q for q in exprs[next(iter(exprs))])
    # a model loads once per process: a rate() of its histogram is always empty
    assert not [q for q in joined.split("rate(")[1:] if q.startswith("docqueue_model_load_seconds")]


def test_flower_sees_the_workers_events(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert re.fullmatch(r"mher/flower:\d+\.\d+(\.\d+)?", flower["image"])
    env = flower["environment"]
    assert env["CELERY_BROKER_URL"] == compose["services"]["worker"]["environment"]["REDIS_URL"]
    assert env["FLOWER_ENABLE_EVENTS"] == "false"  # the workers' DOCQUEUE_TASK_EVENTS decides
    assert compose["services"]["worker"]["environment"]["DOCQUEUE_TASK_EVENTS"] == "true"
    assert Settings(task_events=compose["services"]["worker"]["environment"]["DOCQUEUE_TASK_EVENTS"]).task_events
    assert "/healthcheck" in " ".join(flower["healthcheck"]["test"])


def test_webhooks_worker_gets_its_signing_secret(compose: dict[str, Any]) -> None:
    """Without DOCQUEUE_WEBHOOK_SECRET the webhooks worker refuses its only queue and exits, and
    ``restart: on-failure`` loops it: compose must require the secret instead."""
    env = compose["services"]["webhooks"]["environment"]
    assert env["DOCQUEUE_WEBHOOK_SECRET"].startswith("${DOCQUEUE_WEBHOOK_SECRET:?")
    assert "DOCQUEUE_WEBHOOK_SECRET" in (ROOT / "docker-compose.yml").read_text().split("name: docqueue")[0], \
        "the header's export line must name the secret"


def test_images_built_differently_have_distinct_tags(compose: dict[str, Any]) -> None:
    """Two services building one tag with different build args overwrite each other's image."""
    builds: dict[str, str] = {}
    for name, service in _docqueue_services(compose).items():
        build = json.dumps(service.get("build", {}), sort_keys=True)
        other = builds.setdefault(service["image"], build)
        assert other == build, f"{name} builds {service['image']} with other build arguments than another service"
    assert compose["services"]["worker"]["image"] != compose["services"]["worker-gpu"]["image"]
