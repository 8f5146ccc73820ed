"""The ``generate`` task's requests: one line of an OpenAI Batch API input file, and its ``body``.

A line is ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``; the
body is a chat-completions request. docqueue stores each line as one document whose text is the
body as JSON (:meth:`ChatRequest.text`) and whose id is ``custom_id``, so the producer (reading a
file), a foreign publisher (an inline document) and the worker (running it) read the same model.

The body fields docqueue honours are listed below; any other field is refused (``invalid_request``)
rather than ignored, so a request never runs quietly without a setting it asked for.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from docqueue.errors import DocumentError
from docqueue.storable import text_problem

_Model = TypeVar("_Model", bound=BaseModel)

#: The one endpoint a batch line may name.
CHAT_COMPLETIONS_URL = "/v1/chat/completions"
#: OpenAI's own limit on a ``custom_id`` is 64 characters; docqueue's document ids allow 512.
CUSTOM_ID_MAX_LENGTH = 512


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class TextPart(_Strict):
    """A content part of a message; only text parts (no images, no audio)."""

    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    """One turn of the conversation; the role developer is read as system (OpenAI's newer name)."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def plain(self) -> dict[str, str]:
        """The turn as a chat template takes it: ``{"role", "content"}`` with the text joined."""
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class JsonSchemaFormat(_Strict):
    """response_format.json_schema: the schema the answer must validate against."""

    name: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema", description="A JSON Schema object")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Strict):
    """text (free text), json_object (any JSON object) or json_schema (held to a schema)."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_with_type(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("response_format.json_schema is required with type json_schema, and only with it")
        return self

    def answer_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the answer is held to (``json_object``: any object); None for text."""
        if self.type == "json_object":
            return {"type": "object"}
        return self.json_schema.schema_ if self.json_schema is not None else None


class ChatRequest(_Strict):
    """The ``body`` of a batch line: a chat-completions request."""

    model: str | None = Field(default=None, min_length=1, description=(
        "Model to run; mapped to the worker's allow-list (docs/tasks/generate.md) [default: DOCQUEUE_LLM_MODEL]"))
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, description="Most tokens of the answer")
    max_completion_tokens: int | None = Field(default=None, ge=1, description="OpenAI's newer name of max_tokens")
    temperature: Annotated[float, Field(ge=0, le=2)] = Field(default=1.0, description=(
        "0: greedy decoding; above 0: sampling at this temperature, seeded (seed)"))
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling, with temperature above 0")
    seed: int | None = Field(default=None, ge=0, lt=2**63, description=(
        "Seed of sampling [default: derived from the request's text, so a rerun samples the same answer]"))
    response_format: ResponseFormat | None = None

    @model_validator(mode="before")
    @classmethod
    def _lax_numbers(cls, data: Any) -> Any:
        # JSON has one number type: a temperature of 1 is an int to the parser, and strict mode would refuse it
        if isinstance(data, dict):
            for name in ("temperature", "top_p"):
                value = data.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    data = {**data, name: float(value)}
        return data

    @model_validator(mode="after")
    def _one_limit(self) -> ChatRequest:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValueError("give max_tokens or max_completion_tokens, not both")
        return self

    @property
    def new_tokens(self) -> int | None:
        """The most tokens of the answer asked for (either spelling)."""
        return self.max_tokens if self.max_tokens is not None else self.max_completion_tokens

    def text(self) -> str:
        """The request as a document's text: compact JSON with sorted keys, so the same request is the
        same text (and an earlier result for it is reused)."""
        body = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        # a lone surrogate is storable only escaped (no database takes it raw)
        return json.dumps(body, sort_keys=True, separators=(",", ":")) if text_problem(text) else text


class BatchLine(_Strict):
    """One line of an OpenAI Batch API input file."""

    custom_id: str = Field(min_length=1, max_length=CUSTOM_ID_MAX_LENGTH)
    method: Literal["POST"]
    url: Literal["/v1/chat/completions"]
    body: ChatRequest


def _problem(e: ValidationError) -> str:
    """The validation errors as one line: ``body.messages[0].role: Input should be ...``."""
    parts = []
    for err in e.errors()[:3]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        if err["type"] == "extra_forbidden":
            parts.append(f"{where}: not a field docqueue honours (docs/tasks/generate.md lists them)")
        else:
            parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    more = len(e.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_line(record: Any) -> BatchLine:
    """A decoded JSON line as a :class:`BatchLine`; ``invalid_request`` naming the fields at fault."""
    return _validated(BatchLine, record, "a batch line")


def parse_request(text: str) -> ChatRequest:
    """A document's text (a request body as JSON) as a :class:`ChatRequest`; ``invalid_request``."""
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise DocumentError("invalid_request", f"the document is not a JSON request body ({e})") from None
    return _validated(ChatRequest, raw, "a request body")


def _validated(model: type[_Model], raw: Any, what: str) -> _Model:
    """``raw`` as ``model``, or ``invalid_request`` saying it is not an object or naming the fields at fault."""
    if not isinstance(raw, dict):
        raise DocumentError("invalid_request", f"{what} is a JSON object, not {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise DocumentError("invalid_request", _problem(e)) from None


def request_model(text: str) -> str | None:
    """The ``model`` a request body names, read leniently (a body that does not parse names none: the
    engine then fails it with ``invalid_request``)."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    model = raw.get("model") if isinstance(raw, dict) else None
    return model if isinstance(model, str) and model else None
