"""A real Prometheus (Debian's ``prometheus`` package) scrapes a real prefork worker and ``docqueue
metrics serve``; after batches with failures, every dashboard query and every shipped alert rule
returns data, and the first failures of a kind show in ``increase()`` (their series exist at 0
before them). ``promtool check rules`` passes on the shipped rules.

Skipped where the binaries are not installed (``ops/services.sh``, run by ``make test``, installs the
package where apt-get can).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from docqueue.deadletter import INDEX_KEY
from tests.conftest import ROOT, service_env
from tests.helpers import cli, cli_json, wait_until
from tests.integration.test_metrics import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                       reason="Debian's prometheus package is not installed (apt-get install prometheus; "
                              "ops/services.sh installs it where apt-get can)"),
]

ALERTS = ROOT / "ops/prometheus/alerts.yml"
DASHBOARD = ROOT / "ops/grafana/dashboards/docqueue.json"
#: Panels whose data only exists on other hardware: GPU memory is set by CUDA workers only.
NEEDS_CUDA = {"GPU memory"}
#: Alerts the test's situation makes true: failures in the worker and at submit, a dead letter, a
#: retried job, ready messages on a queue no worker consumes, a target that is down, and a metrics
#: serve that cannot reach its Redis. The others are checked on their signal (the expression
#: without its threshold) returning data.
EXPECTED_ALERTS = {"DocqueueDocumentsFailing", "DocqueueLoaderFailures", "DocqueueDeadLetters", "DocqueueJobsRetried",
                   "DocqueueQueueWithoutWorker", "DocqueueTargetDown", "DocqueueMetricsSourceDown"}
_THRESHOLD = re.compile(r"\s*(>|<|==|!=|>=|<=)\s*[0-9.e+]+\s*$")


def test_promtool_accepts_the_shipped_rules() -> None:
    done = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=10) as r:
        return json.loads(r.read())["data"]


def _total(port: int, expr: str) -> float:
    return sum(float(r["value"][1]) for r in _query(port, expr))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_dashboard_and_alerts_see_a_batch_with_failures(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                        start_worker: Any, processes: list) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, OMP_NUM_THREADS="1")
    worker_port, serve_port, blind_port, prom_port = free_port(), free_port(), free_port(), free_port()
    log = (tmp_path / "services.log").open("wb")

    def spawn(args: list[str], proc_env: dict[str, str]) -> None:
        processes.append(subprocess.Popen(args, env=proc_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))

    # the worker first: it creates the SQLite schema metrics serve reads
    start_worker(env, pool="prefork", concurrency=1, extra=("--metrics-port", str(worker_port)))
    serve = [sys.executable, "-m", "producer.cli", "metrics", "serve", "--host", "127.0.0.1", "--port"]
    spawn([*serve, str(serve_port)], env)
    # a second exporter whose Redis is down: docqueue_metrics_source_up{source="redis"} 0
    spawn([*serve, str(blind_port)], {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": "docqueue-workers", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]},
            {"job_name": "docqueue-metrics",
             "static_configs": [{"targets": [f"127.0.0.1:{serve_port}", f"127.0.0.1:{blind_port}"]}]},
            # nothing listens here: the target-down rule has something to see
            {"job_name": "docqueue-gone", "static_configs": [{"targets": [f"127.0.0.1:{free_port()}"]}]},
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    spawn(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
           f"--web.listen-address=127.0.0.1:{prom_port}"], env)

    seen: list[Any] = []

    def targets_up() -> bool:
        try:
            active = _api(prom_port, "targets")["activeTargets"]
        except OSError as e:
            seen[:] = [str(e)]
            return False
        seen[:] = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in active]
        return sum(1 for t in active if t["health"] == "up") == 3

    try:
        wait_until(targets_up, timeout=120, what="Prometheus to scrape the worker and both exporters")
    except AssertionError as e:
        logged = (tmp_path / "services.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{e}: {seen}\n{logged}") from None
    # The series the failures will increment exist at 0 before them (the whole point of item 1).
    zero = 'docqueue_document_outcomes_total{task="classify",status="failed",error_kind="model_not_allowed"}'
    wait_until(lambda: _query(prom_port, zero), timeout=60, what="the zero series to be scraped")
    assert _total(prom_port, zero) == 0
    assert _query(prom_port, 'docqueue_loader_failures_total{task="classify",error_kind="unsupported_format"}')

    docs = []
    for i in range(4):
        docs.append(tmp_path / f"doc{i}.txt")
        docs[-1].write_text(f"Invoice {i}: please pay the amount due by the end of the month.")
    (tmp_path / "drawing.xyz").write_bytes(b"\x00\x01 not a document")
    good = cli_json(env, "submit", "classify", *map(str, docs), str(tmp_path / "drawing.xyz"),
                    "--labels", "billing,legal", "--wait", "--json", exit_code=5)  # 5: some failed
    assert good["status"]["succeeded"] == 4 and good["status"]["failed"] == 1
    bad = cli_json(env, "submit", "classify", *map(str, docs[:2]), "--labels", "billing,legal",
                   "--model", str(tmp_path / "no-such-model"), "--wait", "--json", exit_code=1)
    assert bad["status"]["failed"] == 2
    cli(env, "retry", bad["batch"], "--failed")  # claimed again: docqueue_job_retries_total
    client = redis.Redis.from_url(clean_redis)
    client.lpush("classify", b"this is not a Celery message")  # refused: a dead letter
    wait_until(lambda: client.zcard(INDEX_KEY) >= 1, timeout=120, what="the worker to dead-letter the item")
    wait_until(lambda: cli_json(env, "status", bad["batch"], "--json")["failed"] == 2
               and _total(prom_port, 'docqueue_job_retries_total{task="classify"}') >= 2,
               timeout=120, what="the retried jobs to fail again and be scraped")
    cli(env, "submit", "summarize", str(docs[0]))  # no worker consumes summarize: it waits
    time.sleep(5)  # a few more scrapes and rule evaluations with everything in place

    # the first failures and the first batch after the worker's start are seen by increase()
    assert _total(prom_port, 'sum(increase(docqueue_document_outcomes_total{status="failed",'
                             'error_kind="model_not_allowed"}[5m]))') >= 3.5  # 2, then 2 again after retry
    assert _total(prom_port, 'sum(increase(docqueue_document_outcomes_total{status="succeeded"}[5m]))') >= 3.5
    assert _total(prom_port, 'sum(increase(docqueue_loader_failures_total{error_kind="unsupported_format"}[5m]))') \
        >= 0.9
    assert _total(prom_port, "sum(docqueue_worker_up)") == 1
    assert _total(prom_port, 'docqueue_workers{queue="classify"}') == 1
    assert _query(prom_port, 'docqueue_queue_messages{queue="webhooks"}')

    panels = json.loads(DASHBOARD.read_text())["panels"]
    checked = 0
    for panel in panels:
        if panel["title"] in NEEDS_CUDA:
            continue
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$task", ".*")
            assert _query(prom_port, expr), f"panel {panel['title']!r}: no data for {expr}"
            checked += 1
    assert checked >= len(panels)

    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    for rule in rules:
        expr = rule["expr"] if rule["alert"] in EXPECTED_ALERTS else _THRESHOLD.sub("", rule["expr"].strip())
        assert _query(prom_port, expr), f"alert {rule['alert']}: no data for {expr}"
    loaded = [r for g in _api(prom_port, "rules")["groups"] for r in g["rules"]]
    assert {r["name"] for r in loaded} == {r["alert"] for r in rules}
    assert all(r["health"] == "ok" for r in loaded), [(r["name"], r.get("lastError")) for r in loaded]
    active = {a["labels"]["alertname"] for a in _api(prom_port, "alerts")["alerts"]
              if a["state"] in ("pending", "firing")}
    assert active >= EXPECTED_ALERTS, EXPECTED_ALERTS - active
