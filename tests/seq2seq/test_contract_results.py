"""translate and abstractive summarize results of a real worker (tiny local seq2seq models) against
docqueue/contract/<task>.result.schema.json, published as a foreign system publishes them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import redis

from docqueue import contract
from tests.conftest import service_env
from tests.helpers import cli_json, results_jsonl, wait_until
from tests.integration.test_foreign_publisher import foreign_message
from tests.seq2seq.conftest import long_english


def test_seq2seq_results_follow_the_schemas(sqlite_url: str, clean_redis: str, tmp_path: Path, start_worker,
                                            tiny_models: dict[str, Path]) -> None:
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_SUMMARIZE_MODEL=str(tiny_models["bart"]),
                      DOCQUEUE_TRANSLATE_MODELS=json.dumps({"en-de": str(tiny_models["marian"])}))
    start_worker(env, queues="summarize,translate")
    text = long_english(paragraphs=2, sentences=3)
    messages = {
        "translate": {"to": "de", "from": "auto", "num_beams": 1},
        "summarize": {"engine": "abstractive", "num_beams": 1, "min_length": 4, "max_length": 16},
    }
    client = redis.Redis.from_url(clean_redis)
    for task, params in messages.items():
        kwargs = {"v": 1, "batch": f"seq2seq-{task}", "params": params, "documents": [{"id": "d-1", "text": text}]}
        jsonschema.Draft202012Validator(contract.load(f"{task}.message")).validate(kwargs)
        client.lpush(task, foreign_message(f"docqueue.{task}", task, kwargs))
    for task in messages:
        wait_until(lambda t=task: cli_json(env, "status", f"seq2seq-{t}", "--json")["succeeded"] == 1, timeout=300,
                   what=f"the {task} result")
        (row,) = results_jsonl(env, f"seq2seq-{task}")
        jsonschema.Draft202012Validator(contract.load(f"{task}.result")).validate(row["result"])
    (translated,) = results_jsonl(env, "seq2seq-translate")
    assert translated["result"]["source_language"] == "en" and translated["result"]["target_language"] == "de"
