"""generate end to end: an OpenAI Batch API file submitted, run by a real worker on tiny random LLMs,
and written back with ``docqueue results --format openai-batch``, checked field by field (a json_schema
answer included).

Its own worker, not the shared ones: the test's models are built in its tmp_path, which only a worker
started with that ``DOCQUEUE_MODEL_DIRS`` allows (the shared workers' settings are fixed at the
session's start)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from docqueue import contract
from tests.conftest import service_env
from tests.helpers import cli, cli_json, results_jsonl
from tests.tiny_llms import build_gpt2_base, build_llama_chat

pytestmark = pytest.mark.integration

URL = "/v1/chat/completions"


def _line(custom_id: str, **body: Any) -> str:
    body.setdefault("messages", [{"role": "user", "content": f"Tell me about {custom_id}."}])
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": URL, "body": body})


def test_a_batch_file_through_a_worker_comes_back_in_openai_format(sqlite_url: str, clean_redis: str,
                                                                   tmp_path: Path, start_worker: Any) -> None:
    models = tmp_path / "models"
    llama, gpt2 = build_llama_chat(models / "llama-chat"), build_gpt2_base(models / "gpt2-base")
    env = service_env(clean_redis, sqlite_url, tmp_path, DOCQUEUE_LLM_MODEL=str(llama),
                      DOCQUEUE_MODEL_DIRS=json.dumps([str(models)]))
    answer = {"type": "object", "properties": {"label": {"enum": ["bug", "question"]}, "urgent": {"type": "boolean"}},
              "required": ["label", "urgent"], "additionalProperties": False}
    schema = {"type": "json_schema", "json_schema": {"name": "triage", "schema": answer}}
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join([
        _line("configured", max_tokens=3, temperature=0),  # no body.model: DOCQUEUE_LLM_MODEL
        _line("by-path", model=str(gpt2), max_tokens=4, temperature=0),  # inside DOCQUEUE_MODEL_DIRS
        _line("hosted", model="gpt-4o-mini", max_tokens=4),  # allowed nowhere: model_not_allowed
        '{"custom_id": "broken", ',
        _line("json", model=str(llama), max_tokens=40, temperature=0, response_format=schema),
        _line("sampled", model=str(llama), max_tokens=5, temperature=0.9, seed=7),
    ]) + "\n", encoding="utf-8")
    start_worker(env, queues="generate")
    done = cli_json(env, "submit", "generate", str(requests), "--wait", "--timeout", "300", "--json", exit_code=5)
    batch = done["batch"]
    assert done["status"]["succeeded"] == 4 and done["status"]["failed"] == 2

    rows = {r.get("id") or f"row{r['row']}": r for r in results_jsonl(env, batch)}
    result_schema = jsonschema.Draft202012Validator(contract.load("generate.result"))
    for row in rows.values():
        if row["status"] == "succeeded":
            result_schema.validate(row["result"])
    out = tmp_path / "output.jsonl"
    cli(env, "results", batch, "--format", "openai-batch", "-o", str(out))
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["custom_id"] for x in lines] == ["configured", "by-path", "hosted", None, "json", "sampled"]
    assert len({x["id"] for x in lines}) == 6
    by_id = {x["custom_id"]: x for x in lines}
    for custom_id, model, tokens in (("configured", llama, 3), ("by-path", gpt2, 4), ("json", llama, 40),
                                     ("sampled", llama, 5)):
        line, row = by_id[custom_id], rows[custom_id]
        assert line["id"] == f"batch_req_{row['document_id']}" and line["error"] is None
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"] == f"req_{row['document_id']}"
        body = response["body"]
        assert body["object"] == "chat.completion" and body["model"] == str(model) == row["model"]["id"]
        assert isinstance(body["created"], int) and body["created"] > 1_700_000_000
        [choice] = body["choices"]
        assert choice["index"] == 0 and choice["logprobs"] is None
        assert choice["message"] == {"role": "assistant", "content": row["result"]["content"], "refusal": None}
        assert choice["finish_reason"] == row["result"]["finish_reason"]
        usage = body["usage"]
        assert usage == row["result"]["usage"] and usage["total_tokens"] == usage["prompt_tokens"] + \
            usage["completion_tokens"]
        # random weights rarely end an answer this early; whichever way, the reason matches the count
        assert (choice["finish_reason"] == "length") == (usage["completion_tokens"] == tokens)
    assert rows["sampled"]["result"]["llm"]["generation"]["seed"] == 7
    content = by_id["json"]["response"]["body"]["choices"][0]["message"]["content"]
    jsonschema.Draft202012Validator(answer).validate(json.loads(content))
    for custom_id, code, kind in (("hosted", 404, "model_not_allowed"), (None, 400, "invalid_json")):
        line = by_id[custom_id]
        assert line["error"] is None and line["response"]["status_code"] == code
        error = line["response"]["body"]["error"]
        assert error["code"] == kind and error["type"] == "invalid_request_error" and error["param"] is None
    assert "gpt-4o-mini" in by_id["hosted"]["response"]["body"]["error"]["message"]
    assert "line 4" in by_id[None]["response"]["body"]["error"]["message"]

    other = tmp_path / "note.txt"
    other.write_text("An invoice for services rendered.")
    classify = cli_json(env, "submit", "classify", str(other), "--labels", "invoice,contract", "--json")["batch"]
    refused = cli(env, "results", classify, "--format", "openai-batch", check=False)
    assert refused.returncode == 2 and "openai-batch writes generate batches only" in refused.stderr
