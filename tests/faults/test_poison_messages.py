"""Poison on the queue: no byte string pushed onto a docqueue list stops or crashes a worker.

Each raw item below goes to the dead-letter store with its specific kind; the worker keeps its PID
and goes on to process the good message pushed after them; a refused message whose batch can be
read makes ``status`` say so instead of "no batch"; a replayed dead letter runs once fixed.
"""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path

import redis

from tests.conftest import service_env
from tests.helpers import cli, cli_json, results_jsonl, wait_until
from tests.integration.test_foreign_publisher import foreign_message

GOOD = {"v": 1, "batch": "after-the-poison", "params": {"labels": ["contract", "invoice"]},
        "documents": [{"id": "inv-1", "text": "Invoice 991: amount due $120.00, payable within 30 days."}]}


def _envelope(**changes: object) -> dict:
    env = json.loads(foreign_message("docqueue.classify", "classify", GOOD))
    env.update(changes)
    return env


def _with_body(body: object) -> bytes:
    env = _envelope()
    env["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps(env).encode()


def _props_without(key: str) -> bytes:
    env = _envelope()
    del env["properties"][key]
    return json.dumps(env).encode()


def _headers(**changes: object) -> bytes:
    env = _envelope()
    env["headers"].update(changes)
    return json.dumps(env).encode()


def _kwargs(kwargs: dict) -> bytes:
    return foreign_message("docqueue.classify", "classify", kwargs)


EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
#: (name, raw item, expected dead-letter kind)
POISON: list[tuple[str, bytes, str]] = [
    ("not json", b"hello, I am not JSON", "not_json"),
    ("json array", b"[1, 2, 3]", "invalid_envelope"),
    ("json number", b"42", "invalid_envelope"),
    ("empty item", b"", "not_json"),
    ("binary", bytes(range(256)) * 4, "not_json"),
    ("no delivery_tag", _props_without("delivery_tag"), "invalid_envelope"),
    ("no delivery_info", _props_without("delivery_info"), "invalid_envelope"),
    ("no properties", json.dumps({"body": "x", "content-type": "application/json"}).encode(), "invalid_envelope"),
    ("pickle body", json.dumps(_envelope(**{
        "content-type": "application/x-python-serialize",
        "body": base64.b64encode(pickle.dumps(([], GOOD, EMBED))).decode()})).encode(), "wrong_content_type"),
    ("bad base64", json.dumps(_envelope(body="!!!not base64!!!")).encode(), "invalid_envelope"),
    ("body not json", json.dumps(_envelope(body=base64.b64encode(b"{oops").decode())).encode(), "not_json"),
    ("body shape", _with_body({"kwargs": GOOD}), "invalid_body"),
    ("positional args", _with_body([["x"], GOOD, EMBED]), "invalid_body"),
    ("kwargs a list", _with_body([[], [GOOD], EMBED]), "invalid_body"),
    ("unknown task", _headers(task="docqueue.nonsense"), "unknown_task"),
    ("task of another queue", _headers(task="docqueue.review"), "unknown_task"),
    ("retries a string", _headers(retries="many"), "invalid_headers"),
    ("timelimit wrong", _headers(timelimit="soon"), "invalid_headers"),
    ("50 MB body", json.dumps(_envelope(body="A" * (50 * 2**20))).encode(), "message_too_large"),
    ("no documents", _kwargs({"v": 1, "batch": "poison-batch"}), "invalid_message"),
    ("version 2", _kwargs({**GOOD, "v": 2, "batch": "poison-batch"}), "invalid_message"),
    ("unknown field", _kwargs({**GOOD, "batch": "poison-batch", "colour": "red"}), "invalid_message"),
]


def test_poison_items_are_dead_lettered_and_the_worker_goes_on(sqlite_url: str, clean_redis: str,
                                                              tmp_path: Path, start_worker) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path)
    worker = start_worker(env)
    pid = worker.proc.pid
    client = redis.Redis.from_url(clean_redis)
    for _, raw, _ in POISON:
        client.lpush("classify", raw)
    client.lpush("classify", foreign_message("docqueue.classify", "classify", GOOD))

    wait_until(lambda: cli_json(env, "status", "after-the-poison", "--json")["succeeded"] == 1
               if "after-the-poison" in cli(env, "status", "after-the-poison", check=False).stdout else False,
               timeout=180, what="the good message after the poison to be processed")
    assert worker.proc.poll() is None and worker.proc.pid == pid, worker.log()[-3000:]
    assert results_jsonl(env, "after-the-poison")[0]["result"]["label"] == "invoice"

    wait_until(lambda: len(cli(env, "dlq", "list", "--json").stdout.splitlines()) >= len(POISON), timeout=60,
               what="every poison item in the dead-letter store")
    letters = [json.loads(line) for line in cli(env, "dlq", "list", "--json").stdout.splitlines()]
    assert [e["kind"] for e in letters] == [kind for _, _, kind in POISON], [(e["kind"], e["reason"]) for e in letters]
    assert all(e["queue"] == "classify" and e["reason"] for e in letters)
    big = letters[[name for name, _, _ in POISON].index("50 MB body")]
    assert big["size"] > 50 * 2**20 and big["truncated"]

    # the refused messages that named a batch: status says so instead of "no batch"
    status = cli_json(env, "status", "poison-batch", "--json")
    assert status["total"] == 0 and status["rejected"] == 3

    # a fix, then a replay: the unknown-field message without the field runs once
    shown = cli_json(env, "dlq", "show", letters[-1]["id"], "--json")
    assert "colour" in shown["raw"] and "Extra inputs are not permitted" in shown["reason"]
    assert cli(env, "dlq", "replay", letters[-1]["id"]).returncode == 0  # still wrong: refused again
    wait_until(lambda: cli_json(env, "status", "poison-batch", "--json")["rejected"] == 3, what="re-refusal")
    assert cli_json(env, "dlq", "purge", "--json")["purged"] == len(POISON)
    assert cli(env, "dlq", "list", "--json").stdout.strip() == ""
    assert worker.proc.poll() is None


def test_jobs_of_another_database_are_refused_not_acked(sqlite_url: str, clean_redis: str, tmp_path: Path,
                                                      start_worker) -> None:
    """A worker with the wrong DATABASE_URL must not ack a producer's message as done."""
    env = service_env(clean_redis, sqlite_url, tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("Invoice 12: amount due $40.")
    batch = cli_json(env, "submit", "classify", str(inbox), "--labels", "contract,invoice", "--json")["batch"]
    other = service_env(clean_redis, f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    wrong = start_worker(other)
    wait_until(lambda: cli(env, "dlq", "list", "--json").stdout.strip(), timeout=120,
               what="the message to be refused")
    letter = json.loads(cli(env, "dlq", "list", "--json").stdout.splitlines()[0])
    assert letter["kind"] == "unknown_jobs" and letter["batch"] == batch and "other.db" in letter["reason"]
    assert cli_json(env, "status", batch, "--json")["queued"] == 1
    # the right worker instead, then a replay: the job runs
    wrong.stop()
    start_worker(env)
    cli(env, "dlq", "replay", "--all")
    wait_until(lambda: cli_json(env, "status", batch, "--json")["succeeded"] == 1, timeout=120, what="replayed job")
