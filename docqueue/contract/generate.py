"""Writes the ``<task>.message.schema.json`` files from the code that validates messages.

The ``params`` of each schema come from the task's pydantic model (``docqueue.params``) and the rest
from the constants ``TaskMessage`` validates with (``docqueue.schema``), so a published schema
cannot say something the worker does not do. Run ``python -m docqueue.contract.generate`` after
changing a params model; ``--check`` exits 1 naming each shipped file that differs (CI and
``tests/unit/test_params.py`` run that check).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from docqueue.chat import ChatRequest
from docqueue.contract import path
from docqueue.names import GENERATE, TASK_TYPES, task_name
from docqueue.params import PARAMS_MODELS, TaskParams
from docqueue.schema import BATCH_ID_MAX_LENGTH, BATCH_ID_PATTERN, DOCUMENT_ID_MAX_LENGTH, ENVELOPE_VERSION
from docqueue.webhooks import URL_MAX_LENGTH

_PARAMS_NOTE = "Task parameters. A key not listed here fails every document of the message with error kind " \
               "invalid_params."


class _ContractSchema(GenerateJsonSchema):
    """Pydantic's schema as a publisher reads it: an optional param is simply left out (no ``null``
    alternatives, no ``null`` defaults) and no generated titles."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _tidy(node: Any, defs: dict[str, Any]) -> Any:
    """Inline ``$ref``s, drop titles and empty defaults, recursively."""
    if isinstance(node, list):
        return [_tidy(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _tidy(defs[node["$ref"].rsplit("/", 1)[1]], defs)
    out = {k: _tidy(v, defs) for k, v in node.items() if k not in ("title", "$defs")}
    if out.get("default", 0) in (None, []):
        del out["default"]
    return out


def params_schema(model: type[TaskParams]) -> dict[str, Any]:
    """The JSON Schema of one task's ``params`` object."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_ContractSchema)
    schema: dict[str, Any] = _tidy(raw, raw.get("$defs", {}))
    schema.pop("description", None)  # the model's docstring is for developers
    schema["description"] = f"{_PARAMS_NOTE} {model.contract_note}".rstrip()
    return schema


def request_schema() -> dict[str, Any]:
    """The JSON Schema of a ``generate`` document's text, a chat-completions request body."""
    raw = ChatRequest.model_json_schema(by_alias=True, schema_generator=_ContractSchema)
    schema: dict[str, Any] = _tidy(raw, raw.get("$defs", {}))
    schema["description"] = "A chat-completions request: the body of an OpenAI Batch API line (docs/tasks/generate.md)"
    return schema


def _text_schema(task: str) -> dict[str, Any]:
    text: dict[str, Any] = {"type": "string", "description": "The document's text (NUL characters are removed)"}
    if task == GENERATE:
        text.update(description="One chat-completions request body, as JSON text", contentMediaType="application/json",
                    contentSchema=request_schema())
    return text


def message_schema(task: str) -> dict[str, Any]:
    """The whole ``<task>.message`` schema: the kwargs of the task's Celery message."""
    params = params_schema(PARAMS_MODELS[task])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:docqueue:contract:{task}.message",
        "title": f"docqueue {task} message: the kwargs of Celery task {task_name(task)}",
        "description": f"The second element of the body [args, kwargs, embed] of an envelope on Redis list '{task}' "
                       "(envelope.schema.json). Two forms: inline documents (for other systems) or ids of jobs the "
                       "docqueue producer stored. A message that does not validate is dead-lettered whole "
                       "(invalid_message); one bad document of an otherwise valid message fails alone "
                       "(invalid_document, duplicate_document).",
        "type": "object",
        "additionalProperties": False,
        "required": ["v", "params"] if params.get("required") else ["v"],
        "properties": {
            "v": {"const": ENVELOPE_VERSION,
                  "description": "Version of this message format; workers refuse any other (invalid_message). "
                                 "Always send it (a missing v is read as 1)."},
            "batch": {"type": "string", "minLength": 1, "maxLength": BATCH_ID_MAX_LENGTH, "pattern": BATCH_ID_PATTERN,
                      "description": "Batch id chosen by the publisher; documents are stored under (batch, id)"},
            "params": params,
            "documents": {"type": "array", "items": {"$ref": "#/$defs/document"}},
            "webhook": {"type": "string", "maxLength": URL_MAX_LENGTH, "pattern": "^https?://[^/?#]+",
                        "description": "Inline messages only: POST the batch-finished event here, signed as Standard "
                                       "Webhooks say (docqueue.webhooks); stored on the batch, the last message "
                                       "naming one wins. Omit for none."},
            "webhook_documents": {"type": "boolean", "default": False,
                                  "description": "Inline messages only: also POST each document's finished event "
                                                 "to webhook."},
            "jobs": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                     "description": "Producer form: ids of jobs already in the database"},
        },
        "oneOf": [
            {"title": "inline documents", "required": ["batch", "documents"],
             "properties": {"documents": {"minItems": 1}, "jobs": {"maxItems": 0}}},
            {"title": "stored jobs (docqueue producer)", "required": ["jobs"],
             "properties": {"jobs": {"minItems": 1}, "documents": {"maxItems": 0}},
             "not": {"anyOf": [{"required": ["webhook"]}, {"required": ["webhook_documents"]}]}},
        ],
        "$defs": {"document": {
            "type": "object", "additionalProperties": False, "required": ["id", "text"],
            "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": DOCUMENT_ID_MAX_LENGTH,
                       "description": "The publisher's document id (results: id / external_id). Unique within a "
                                      "batch: the same id again with the same text is a no-op that keeps the "
                                      "result, with a different text a conflict error"},
                "text": _text_schema(task),
                "metadata": {"type": "object", "description": "Kept with the document and returned with its result"},
            }}},
    }


def render(task: str) -> str:
    """The file text of ``<task>.message.schema.json`` exactly as shipped."""
    return json.dumps(message_schema(task), indent=2, ensure_ascii=False) + "\n"


def stale() -> list[str]:
    """Names of the shipped message schemas that differ from what the models generate."""
    return [f"{t}.message" for t in TASK_TYPES
            if not path(f"{t}.message").is_file() or path(f"{t}.message").read_text(encoding="utf-8") != render(t)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        for name in names:
            print(f"{path(name)} differs from its model; run python -m docqueue.contract.generate", file=sys.stderr)
        return 1 if names else 0
    for task in TASK_TYPES:
        path(f"{task}.message").write_text(render(task), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
