"""generate: OpenAI Batch API files read line by line, the llm generate engine on tiny random models
(tests/tiny_llms.py), and OpenAI's output-file lines. The answers are noise; what is tested is what
docqueue enforces: a bad line fails alone, stop reasons, usage counts, seeded sampling, the limits,
JSON answers valid against their schema (constrained decoding)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from docqueue.chat import parse_request
from docqueue.errors import DocumentError
from docqueue.names import GENERATE
from docqueue.params import GenerateParams
from docqueue.settings import Settings
from producer.loaders import iter_task_documents
from producer.openai_output import output_line
from tests.tiny_llms import build_all
from workers.engines.llm import LLMGenerator
from workers.pipeline import job_params
from workers.registry import Registry

URL = "/v1/chat/completions"


def _line(custom_id: str, **body: Any) -> dict[str, Any]:
    body.setdefault("messages", [{"role": "user", "content": f"Say something about {custom_id}."}])
    return {"custom_id": custom_id, "method": "POST", "url": URL, "body": body}


def _request(question: str = "Name a clause.", **fields: Any) -> str:
    return json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": question}], **fields})


@pytest.fixture(scope="module")
def llms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_all(tmp_path_factory.mktemp("llms"))


@pytest.fixture(scope="module")
def registry(llms: dict[str, str]) -> Registry:
    return Registry(Settings(model_dirs=[str(Path(llms["llama"]).parent)], device="cpu", batch_max_tokens=4096,
                             llm_max_new_tokens={"generate": 64}))


def _engine(registry: Registry, path: str) -> LLMGenerator:
    engine = registry.get(GENERATE, path, params={"model": path})
    assert isinstance(engine, LLMGenerator)
    return engine


def test_a_batch_file_with_bad_lines_fails_them_alone_and_reads_the_rest(tmp_path: Path) -> None:
    good = _line("r1", model="m", max_tokens=5, temperature=0)
    parts = _line("r2", messages=[{"role": "user", "content": [{"type": "text", "text": "Hello "},
                                                              {"type": "text", "text": "there"}]}])
    lines = [json.dumps(good), "", "{not json", json.dumps({**_line("r3"), "url": "/v1/embeddings"}),
             json.dumps(_line("r4", n=2)), json.dumps(_line("r1")), "[1, 2]", json.dumps(parts),
             json.dumps(_line("r5", messages=[{"role": "robot", "content": "beep"}]))]
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs = list(iter_task_documents(GENERATE, [str(path)]))
    got = [(d.source_row, d.external_id, d.error_kind) for d in docs]
    assert got == [(1, "r1", None), (3, None, "invalid_json"), (4, "r3", "invalid_request"),
                   (5, "r4", "invalid_request"), (6, "r1", "duplicate_custom_id"), (7, None, "invalid_request"),
                   (8, "r2", None), (9, "r5", "invalid_request")]
    messages = {d.source_row: d.error_message or "" for d in docs}
    assert messages[4].startswith(f"{path} line 4: url:") and "/v1/chat/completions" in messages[4]
    assert "body.n: not a field docqueue honours" in messages[5]
    assert "'r1' appears on an earlier line" in messages[6]
    assert "body.messages[0].role" in messages[9]
    first, second = docs[0], docs[6]
    assert json.loads(first.text) == good["body"] and first.sha256 == hashlib.sha256(first.text.encode()).hexdigest()
    assert parse_request(second.text).messages[0].plain() == {"role": "user", "content": "Hello there"}


def test_max_tokens_ends_with_length_and_usage_counts_the_tokens(registry: Registry, llms: dict[str, str]) -> None:
    for name in ("llama", "gpt2"):  # a chat template, and the transcript of a base model
        engine = _engine(registry, llms[name])
        texts = [_request(f"Question {i}?", max_tokens=3 + i, temperature=0) for i in range(4)]
        outcomes = engine.run(texts, GenerateParams())
        for i, (text, o) in enumerate(zip(texts, outcomes, strict=True)):
            assert isinstance(o, dict), o
            assert o["finish_reason"] == "length" and o["usage"]["completion_tokens"] == 3 + i
            prompt = len(engine.prompt(parse_request(text)))
            assert o["usage"] == {"prompt_tokens": prompt, "completion_tokens": 3 + i, "total_tokens": prompt + 3 + i}
            assert o["llm"]["model"] == llms[name] and o["llm"]["finish_reason"] == "length"
            assert o["llm"]["template"]["form"] == ("chat" if name == "llama" else "completion")
            assert o["llm"]["generation"] == {"do_sample": False, "num_beams": 1, "max_new_tokens": 3 + i}


def test_an_answer_the_model_ends_stops_with_stop(registry: Registry, llms: dict[str, str]) -> None:
    # the schema of an empty object leaves the model "{}" and then only the end of its turn
    empty = {"type": "json_schema", "json_schema": {"name": "empty", "schema": {
        "type": "object", "properties": {}, "additionalProperties": False}}}
    [o] = _engine(registry, llms["llama"]).run([_request(max_tokens=20, temperature=0, response_format=empty)],
                                                GenerateParams())
    assert isinstance(o, dict) and o["content"] == "{}" and o["finish_reason"] == "stop"
    assert o["usage"]["completion_tokens"] < 20 and o["response_format"] == "json_schema"


LABEL_SCHEMA = {"type": "object", "properties": {"label": {"enum": ["invoice", "contract", "news"]},
                                                 "urgent": {"type": "boolean"},
                                                 "tags": {"type": "array", "items": {"enum": ["a", "b"]},
                                                          "maxItems": 2}},
                "required": ["label", "urgent"], "additionalProperties": False}


def test_json_schema_answers_are_valid_over_many_requests(registry: Registry, llms: dict[str, str]) -> None:
    import jsonschema

    fmt = {"type": "json_schema", "json_schema": {"name": "triage", "schema": LABEL_SCHEMA, "strict": True}}
    texts = [_request(f"Triage ticket {i}: {'urgent ' * (i % 7)}invoice?", max_tokens=48, response_format=fmt,
                      temperature=0 if i % 4 else 1.0) for i in range(60)]
    outcomes = _engine(registry, llms["llama"]).run(texts, GenerateParams())
    validator = jsonschema.Draft202012Validator(LABEL_SCHEMA)
    for o in outcomes:
        assert isinstance(o, dict) and o["finish_reason"] == "stop", o
        validator.validate(json.loads(o["content"]))
    assert sum(1 for o in outcomes if isinstance(o, dict) and o["llm"]["generation"]["do_sample"]) == 15
    objects = _engine(registry, llms["gpt2"]).run(
        [_request(f"Any JSON {i}", max_tokens=24, temperature=0, response_format={"type": "json_object"})
         for i in range(10)], GenerateParams())
    for o in objects:  # json_object: any object; an answer cut by max_tokens is a prefix of one
        assert isinstance(o, dict)
        if o["finish_reason"] == "stop":
            assert isinstance(json.loads(o["content"]), dict)
        else:
            assert o["content"].startswith("{") and o["usage"]["completion_tokens"] == 24


def test_greedy_and_seeded_answers_do_not_depend_on_the_batch(registry: Registry, llms: dict[str, str]) -> None:
    engine = _engine(registry, llms["llama"])
    greedy = _request("The one to compare.", max_tokens=12, temperature=0)
    sampled = _request("The one to compare.", max_tokens=12, temperature=1.0, seed=11)
    unseeded = _request("Another one.", max_tokens=12, temperature=0.8)
    others = [_request("x " * (5 + 20 * i), max_tokens=12, temperature=0) for i in range(5)]
    alone = engine.run([greedy, sampled, unseeded], GenerateParams())
    crowded = engine.run([*others[:2], sampled, greedy, *others[2:], unseeded], GenerateParams())
    assert all(isinstance(o, dict) for o in alone + crowded)
    assert [o["content"] for o in alone] == [crowded[3]["content"], crowded[2]["content"], crowded[7]["content"]]
    assert alone[1]["llm"]["generation"] == {"do_sample": True, "num_beams": 1, "max_new_tokens": 12,
                                             "temperature": 1.0, "top_p": 1.0, "seed": 11}
    derived = alone[2]["llm"]["generation"]["seed"]
    assert derived == int.from_bytes(hashlib.sha256(unseeded.encode()).digest()[:8], "big") >> 1
    # other seeds sample other answers (twelve tokens from a 1,500-token vocabulary at temperature 1)
    seeds = [_request("The one to compare.", max_tokens=12, temperature=1.0, seed=s) for s in range(4)]
    assert len({o["content"] for o in engine.run(seeds, GenerateParams())}) > 1  # type: ignore[index]


def test_requests_the_engine_cannot_run_fail_alone(registry: Registry, llms: dict[str, str]) -> None:
    engine = _engine(registry, llms["llama"])
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"$ref": "#/nowhere"}}}
    texts = ["{not json", _request(max_tokens=65), _request("word " * 600, max_tokens=8),
             _request(max_tokens=4, response_format=schema), _request(max_tokens=4, response_format={"type": "text"}),
             json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True})]
    outcomes = engine.run(texts, GenerateParams())
    kinds = [o.kind if isinstance(o, DocumentError) else "ok" for o in outcomes]
    assert kinds == ["invalid_request", "too_many_new_tokens", "prompt_too_long", "invalid_schema", "ok",
                     "invalid_request"]
    assert "max_tokens 65 is over this worker's limit for generate (64" in str(outcomes[1])
    gemma = _engine(registry, llms["gemma"])  # its template refuses a system turn: that request alone fails
    refused, answered = gemma.run([_request(max_tokens=3), json.dumps(
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "temperature": 0})], GenerateParams())
    assert isinstance(refused, DocumentError) and refused.kind == "invalid_request"
    assert "chat template refuses" in refused.message and isinstance(answered, dict)


def test_the_client_builds_a_request_document_or_says_what_is_wrong() -> None:
    from docqueue.client import Document

    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "temperature": 0}
    doc = Document.chat("r1", body, {"team": "a"})
    assert doc.id == "r1" and doc.metadata == {"team": "a"} and json.loads(doc.text) == {**body, "temperature": 0.0}
    with pytest.raises(ValueError, match="request 'r2': max_tokens: Input should be greater than or equal to 1"):
        Document.chat("r2", {**body, "max_tokens": 0})
    with pytest.raises(ValueError, match="tools: not a field docqueue honours"):
        Document.chat("r3", {**body, "tools": []})


def test_each_line_runs_its_own_model_unless_the_message_names_one() -> None:
    text = _request(model="org/model-a")
    assert job_params(GENERATE, {}, text) == {"model": "org/model-a"}
    assert job_params(GENERATE, {"model": "org/b"}, text) == {"model": "org/b"}
    assert job_params(GENERATE, {}, "{not json") == {} and job_params(GENERATE, {}, _request()) == {}
    assert job_params("summarize", {}, text) == {}


def test_output_lines_follow_openai_field_by_field(registry: Registry, llms: dict[str, str]) -> None:
    from datetime import datetime, timezone

    [result] = _engine(registry, llms["llama"]).run([_request(max_tokens=4, temperature=0)], GenerateParams())
    assert isinstance(result, dict)
    finished = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
    row = {"document_id": "d1", "id": "r1", "status": "succeeded", "result": result, "finished_at": finished,
           "model": {"id": llms["llama"], "revision": "abc"}}
    line = output_line(row)
    assert line is not None and set(line) == {"id", "custom_id", "response", "error"}
    assert (line["id"], line["custom_id"], line["error"]) == ("batch_req_d1", "r1", None)
    assert line["response"]["status_code"] == 200 and line["response"]["request_id"] == "req_d1"
    body = line["response"]["body"]
    assert body["object"] == "chat.completion" and body["id"] == "chatcmpl-d1" and body["model"] == llms["llama"]
    assert body["created"] == int(finished.timestamp()) and body["system_fingerprint"] == "abc"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": result["content"],
                                                        "refusal": None},
                                "logprobs": None, "finish_reason": result["finish_reason"]}]
    assert body["usage"] == result["usage"]
    for kind, code, kind_type in (("model_not_allowed", 404, "invalid_request_error"),
                                  ("invalid_request", 400, "invalid_request_error"),
                                  ("invalid_json", 400, "invalid_request_error"),
                                  ("engine_error", 500, "server_error")):
        failed = output_line({"document_id": "d2", "id": None, "status": "failed", "result": None,
                              "error": {"kind": kind, "message": f"why {kind}"}})
        assert failed == {"id": "batch_req_d2", "custom_id": None, "error": None, "response": {
            "status_code": code, "request_id": "req_d2",
            "body": {"error": {"message": f"why {kind}", "type": kind_type, "param": None, "code": kind}}}}
    cancelled = output_line({"document_id": "d3", "id": "r3", "status": "cancelled"})
    assert cancelled is not None and cancelled["response"] is None and cancelled["error"]["code"] == "batch_cancelled"
    assert output_line({"document_id": "d4", "id": "r4", "status": "queued"}) is None
