"""``docqueue results B --format openai-batch``: a generate batch as an OpenAI Batch API output file.

One line per finished request, in the batch's order (OpenAI's own order is arbitrary: match lines by
``custom_id``)::

    {"id": "batch_req_…", "custom_id": "…", "response": {"status_code": 200, "request_id": "req_…",
     "body": {"id": "chatcmpl-…", "object": "chat.completion", "created": …, "model": "…",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "…", "refusal": null},
                           "logprobs": null, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": …, "completion_tokens": …, "total_tokens": …},
              "system_fingerprint": "…"}}, "error": null}

A request that failed is written as OpenAI writes a request the API answered with an error: a
``response`` with the HTTP status that error would have had and an ``{"error": {"message", "type",
"param", "code"}}`` body, ``code`` being docqueue's error kind. A cancelled request is written as
OpenAI writes one its batch never ran: ``"response": null`` and ``"error": {"code":
"batch_cancelled", "message"}``. Successes and failures share one file, as vLLM's ``run_batch``
writes them; requests still unfinished are left out (and counted on stderr).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

from docqueue.errors import LOADER_ERROR_KINDS

#: Error kinds that are the request's fault (HTTP 400, ``invalid_request_error``) or name a model the
#: worker will not or cannot run (404, as OpenAI answers an unknown model); every other kind is the
#: server's (500, ``server_error``).
CLIENT_ERRORS = frozenset({*LOADER_ERROR_KINDS, "invalid_request", "invalid_params", "too_many_new_tokens",
                           "prompt_too_long", "invalid_schema", "invalid_document", "invalid_text",
                           "duplicate_document", "conflict", "empty_document"})
MODEL_ERRORS = frozenset({"model_not_allowed", "model_unavailable", "wrong_model_kind"})


def _created(row: dict[str, Any]) -> int:
    finished = row.get("finished_at")
    return int(finished.timestamp()) if isinstance(finished, datetime) else 0


def completion(row: dict[str, Any]) -> dict[str, Any]:
    """A succeeded generate result as OpenAI's ``chat.completion`` object."""
    result, model = row["result"], row.get("model") or {}
    return {"id": f"chatcmpl-{row['document_id']}", "object": "chat.completion", "created": _created(row),
            "model": model.get("id") or result.get("llm", {}).get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result["content"], "refusal": None},
                         "logprobs": None, "finish_reason": result["finish_reason"]}],
            "usage": result["usage"], "system_fingerprint": model.get("revision")}


def status_of(kind: str) -> tuple[int, str]:
    """The HTTP status and OpenAI error type a failure of ``kind`` is written with."""
    if kind in MODEL_ERRORS:
        return 404, "invalid_request_error"
    if kind in CLIENT_ERRORS:
        return 400, "invalid_request_error"
    return 500, "server_error"


def output_line(row: dict[str, Any]) -> dict[str, Any] | None:
    """One ``iter_results`` row as an output-file line; None for a request not finished yet."""
    doc = row["document_id"]
    line: dict[str, Any] = {"id": f"batch_req_{doc}", "custom_id": row.get("id"), "response": None, "error": None}
    status = row["status"]
    if status == "succeeded":
        line["response"] = {"status_code": 200, "request_id": f"req_{doc}", "body": completion(row)}
    elif status == "failed":
        error = row.get("error") or {}
        kind = str(error.get("kind") or "internal_error")
        code, kind_type = status_of(kind)
        line["response"] = {"status_code": code, "request_id": f"req_{doc}", "body": {"error": {
            "message": error.get("message") or kind, "type": kind_type, "param": None, "code": kind}}}
    elif status == "cancelled":
        line["error"] = {"code": "batch_cancelled", "message": "the batch was cancelled before this request ran "
                         "(docqueue cancel)"}
    else:
        return None
    return line


def write_output(rows: Iterable[dict[str, Any]], stream: IO[str]) -> tuple[int, int]:
    """Write the output file; ``(lines written, requests left out because unfinished)``."""
    written = unfinished = 0
    for row in rows:
        line = output_line(row)
        if line is None:
            unfinished += 1
            continue
        stream.write(json.dumps(line, ensure_ascii=False) + "\n")
        written += 1
    return written, unfinished
