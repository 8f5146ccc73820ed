"""docker-compose.yml is read, not run (no Docker engine here): its structure, images, health
checks, start order, environment and commands must match what docqueue actually offers."""

from __future__ import annotations

import re
from typing import Any

import click
import pytest
import yaml

from docqueue.settings import Settings
from producer.cli import main
from tests.conftest import ROOT


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
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        unknown = {k for k in env if k.startswith("DOCQUEUE_") and k not in known}
        assert not unknown, f"{name} sets variables docqueue does not read: {unknown}"
        # every value parses as docqueue settings would parse it
        Settings(**{k.lower()[len("docqueue_"):]: v for k, v in env.items()
                    if k.startswith("DOCQUEUE_") and k.lower()[len("docqueue_"):] in Settings.model_fields})


def test_commands_are_real_cli_commands(compose: dict[str, Any]) -> None:
    for name, service in _docqueue_services(compose).items():
        args = list(service["command"])
        ctx = main.make_context("docqueue", list(args), resilient_parsing=True)
        command: click.Command = main
        rest = args
        while isinstance(command, click.Group) and rest:
            sub = command.get_command(ctx, rest[0])
            assert sub is not None, f"{name}: unknown command {rest[0]!r}"
            command, rest = sub, rest[1:]
        sub_ctx = command.make_context(command.name or "", list(rest))  # raises on unknown options
        assert sub_ctx.params is not None, name


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
