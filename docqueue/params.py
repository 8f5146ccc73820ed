"""The ``params`` of each task, written once: one frozen pydantic model per task.

Every rule about what a submission may ask for lives here and nowhere else. The producer builds a
dict from its options and validates it here (errors become Click usage errors); the worker validates
the ``params`` of each message here (errors fail every document of the message with
``invalid_params``); and the published JSON Schemas (``docqueue/contract/<task>.message.schema.json``)
are generated from these models (``python -m docqueue.contract.generate``), so the four can no
longer drift.

**Adding a param is one edit:** add a field to the task's model below, with its type, bounds,
default and ``description`` (and, if it depends on other fields, a line in the model's
``_check``), then run ``python -m docqueue.contract.generate`` to rewrite the shipped schema. The
worker accepts it, the schema lists it and ``tests/unit/test_params.py`` holds the two together.
The CLI option that sets it stays in ``producer/taskopts.py``.

Error messages name params in backticks (`` `labels` ``) so each side can say them its own way:
the worker as ``'labels'``, the CLI as ``--labels`` (:meth:`ParamsError.render`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from docqueue.contract_categories import CUAD_CATEGORIES, canonical_category
from docqueue.errors import DocqueueError
from docqueue.languages import code_for
from docqueue.names import CLASSIFY, GENERATE, REVIEW, SUMMARIZE, TRANSLATE
from docqueue.settings import DEFAULT_CLASSIFY_MAX_EXAMPLES, DEFAULT_CLASSIFY_MAX_LABELS, Settings

#: The hard ceiling on examples in one message, whatever DOCQUEUE_CLASSIFY_MAX_EXAMPLES says (the
#: schema publishes it; the setting may only lower it).
EXAMPLES_CEILING = 20_000
_LANGUAGE = re.compile(r"^[A-Za-z]{2}$")
#: Where the label goes in a hypothesis template.
TEMPLATE_SLOT = r"\{(label)?\}"
_NAME = re.compile(r"`([a-z_]+)`")


class ParamsError(DocqueueError):
    """A submission's params break the task's contract. ``message`` names params in backticks;
    :meth:`render` spells them for its reader. ``field`` is the param at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(_NAME.sub(r"'\1'", message))
        self.template = message
        self.field = field

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each `` `param` `` spelled as ``names`` says (default: ``'param'``)."""
        return _NAME.sub(lambda m: (names or {}).get(m.group(1), f"'{m.group(1)}'"), self.template)


@dataclass(frozen=True)
class Limits:
    """Bounds that come from settings (so they differ per deployment), passed as validation context."""

    max_labels: int = DEFAULT_CLASSIFY_MAX_LABELS
    max_examples: int = DEFAULT_CLASSIFY_MAX_EXAMPLES

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The bounds a deployment's settings put on params."""
        return cls(max_labels=settings.classify_max_labels, max_examples=settings.classify_max_examples)


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_params", message)


def _limits(info: ValidationInfo) -> Limits:
    context = info.context
    return context if isinstance(context, Limits) else Limits()


def _language_code(value: str, name: str, allow_auto: bool = False) -> str:
    code = value.strip().lower()
    if (allow_auto and code == "auto") or _LANGUAGE.match(code):
        return code
    raise _invalid(f"`{name}` {value!r} is not an ISO 639-1 code (two letters, e.g. en, de)"
                   + (" or 'auto'" if allow_auto else ""))


class TaskParams(BaseModel):
    """What every task's params share: the model a submission may name. Strict, so a JSON ``"true"``
    is not quietly a boolean, and ``extra="forbid"``, so a typo such as ``mutli_label`` fails
    (``invalid_params``) instead of running with the default and looking like a bad model."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True,
                              json_schema_extra={"dependentRequired": {"model_revision": ["model"]}})
    #: The task these params belong to, and one sentence for the schema's ``params.description``.
    task: ClassVar[str] = ""
    contract_note: ClassVar[str] = ""

    model: str | None = Field(default=None, min_length=1, description=(
        "Model for this message: a Hugging Face id in the worker's HF cache, or a path on the worker "
        "[default: the worker's configured model]"))
    model_revision: str | None = Field(default=None, min_length=1, description=(
        "Revision (branch, tag, commit) of model; only with model"))

    @model_validator(mode="after")
    def _revision_needs_model(self) -> TaskParams:
        if self.model_revision and not self.model:
            raise _invalid("`model_revision` needs `model`")
        return self

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None, limits: Limits | None = None) -> Self:
        """``raw`` (a message's JSON params) validated as this task's params; raises
        :class:`ParamsError` with one line naming the first problem (or every unknown key)."""
        if raw is not None and not isinstance(raw, Mapping):
            raise ParamsError(f"params must be an object, not {type(raw).__name__}")
        try:
            return cls.model_validate(dict(raw or {}), context=limits or Limits())
        except ValidationError as e:
            raise _summary(cls, e) from None

    def wire(self) -> dict[str, Any]:
        """The JSON params of a message: what was set, as the schema spells it."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Example(BaseModel):
    """One labelled example the user already has (few-shot)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    text: str = Field(min_length=1)
    label: str = Field(min_length=1)

    @field_validator("text", "label")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise _invalid("an example needs non-empty string `text` and `label`")
        return v

    @field_validator("label")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()


class ClassifyParams(TaskParams):
    """``classify``: zero-shot over labels, few-shot with examples, or a fine-tuned model's own labels."""

    task: ClassVar[str] = CLASSIFY
    contract_note: ClassVar[str] = (
        "Labels come from labels, else from the examples' labels; at least two are needed unless engine is "
        "fine-tuned (the model's own labels).")

    # an empty list is what earlier producers sent (and schedules stored) for a fine-tuned model's own
    # labels, so it is accepted; the schema asks publishers for at least one
    labels: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, description=(
        "Candidate labels, in the order results list their scores"), json_schema_extra={"minItems": 1})
    descriptions: dict[str, str] | None = Field(default=None, description=(
        "label -> description, used by the embedding engine"))
    examples: list[Example] | None = Field(default=None, max_length=EXAMPLES_CEILING, description=(
        "Few-shot examples for the embedding engine; at most DOCQUEUE_CLASSIFY_MAX_EXAMPLES (default "
        f"{DEFAULT_CLASSIFY_MAX_EXAMPLES}); their labels must be among labels"))
    engine: Literal["auto", "embedding", "nli", "fine-tuned", "llm"] = Field(default="auto", description=(
        "auto: what the model is (sentence encoder -> embedding, entailment head -> nli, other classification "
        "head -> fine-tuned, causal LM -> llm)"))
    multi_label: bool = Field(default=False, description=(
        "Each label judged on its own; result.labels lists every label scoring >= threshold"))
    threshold: float = Field(default=0.5, ge=0, le=1)
    template: str | None = Field(default=None, description=(
        "Hypothesis per label; {} (or {label}) marks where the label goes"),
        json_schema_extra={"pattern": TEMPLATE_SLOT})

    @model_validator(mode="before")
    @classmethod
    def _labels_from_examples(cls, data: Any) -> Any:
        # without labels, the examples' labels (in first-seen order) are the label set
        if isinstance(data, dict) and data.get("labels") is None and isinstance(data.get("examples"), list):
            found = [e["label"].strip() for e in data["examples"] if isinstance(e, dict)
                     and isinstance(e.get("label"), str) and e["label"].strip()]
            data = {**data, "labels": list(dict.fromkeys(found))} if found else data
        return data

    @field_validator("labels")
    @classmethod
    def _label_names(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if not all(x.strip() for x in v):
            raise _invalid("`labels` must be a list of label names")
        names = list(dict.fromkeys(x.strip() for x in v))
        limit = _limits(info).max_labels
        if len(names) > limit:
            raise _invalid(f"{len(names)} labels; at most {limit} per submission (DOCQUEUE_CLASSIFY_MAX_LABELS): "
                           "every document is scored against each")
        return names

    @field_validator("examples")
    @classmethod
    def _example_count(cls, v: list[Example] | None, info: ValidationInfo) -> list[Example] | None:
        limit = _limits(info).max_examples
        if v is not None and len(v) > limit:
            raise _invalid(f"{len(v)} examples; at most {limit} may travel with a submission "
                           "(DOCQUEUE_CLASSIFY_MAX_EXAMPLES)")
        return v

    @field_validator("template")
    @classmethod
    def _slot(cls, v: str | None) -> str | None:
        if v is not None and not re.search(TEMPLATE_SLOT, v):
            raise _invalid("`template` must put {} where the label goes (or {label}), e.g. 'This text is about {}.'")
        return v

    @model_validator(mode="after")
    def _check(self) -> ClassifyParams:
        if self.engine != "fine-tuned" and len(self.labels) < 2:
            raise _invalid("classify needs at least two labels (`labels`, or the labels of `examples`); only "
                           "`engine` fine-tuned takes its labels from the model")
        unknown = sorted({e.label for e in self.examples or ()} - set(self.labels))
        if self.labels and unknown:
            raise _invalid(f"examples use labels missing from the label set: {', '.join(unknown[:5])}")
        if self.examples and self.engine in ("nli", "fine-tuned", "llm"):
            raise _invalid(f"`examples` steer the embedding engine; `engine` {self.engine} cannot use them")
        return self

    @property
    def label_descriptions(self) -> dict[str, str]:
        """Descriptions of the labels that have one (empty ones dropped)."""
        return {k: v for k, v in (self.descriptions or {}).items() if v}


class SummarizeParams(TaskParams):
    """``summarize``: extractive (key sentences) or abstractive (a seq2seq model writes)."""

    task: ClassVar[str] = SUMMARIZE
    contract_note: ClassVar[str] = (
        "extractive picks the document's key sentences (sentences); abstractive generates a summary with a "
        "seq2seq model (the generation options); llm has a causal LM write it (style, max_words, "
        "summary_language, max_new_tokens).")

    engine: Literal["extractive", "abstractive", "llm"] | None = Field(default=None, description=(
        "[default: the worker's DOCQUEUE_SUMMARIZE_ENGINE, else the kind of model]"))
    language: str = Field(default="en", description="Language of the documents (ISO 639-1), for sentence boundaries",
                          json_schema_extra={"pattern": _LANGUAGE.pattern})
    sentences: int = Field(default=3, ge=1, description="extractive: sentences in the summary")
    num_beams: int | None = Field(default=None, ge=1, description="abstractive: beam width")
    max_length: int | None = Field(default=None, ge=1, description="abstractive: most tokens in the summary")
    min_length: int | None = Field(default=None, ge=0, description="abstractive: fewest tokens in the summary")
    length_penalty: float | None = Field(default=None, description="abstractive: >1 favours longer summaries")
    no_repeat_ngram_size: int | None = Field(default=None, ge=0, description=(
        "abstractive: n-grams of this size never repeat"))
    style: Literal["paragraph", "bullets", "tldr"] | None = Field(default=None, description=(
        "llm: the summary's form [default: paragraph]"))
    max_words: int | None = Field(default=None, ge=1, description="llm: most words the summary is asked to have")
    summary_language: str | None = Field(default=None, min_length=1, description=(
        "llm: language of the summary, ISO 639-1 code or English name (de, German) [default: the model's]"))
    max_new_tokens: int | None = Field(default=None, ge=1, description=(
        "llm: most tokens the summary may have, within the worker's DOCQUEUE_LLM_MAX_NEW_TOKENS [default: 200]"))

    @field_validator("language")
    @classmethod
    def _code(cls, v: str) -> str:
        return _language_code(v, "language")

    @field_validator("summary_language")
    @classmethod
    def _summary_language(cls, v: str | None) -> str | None:
        if v is not None and code_for(v) is None:
            raise _invalid(f"`summary_language` {v!r} is neither an ISO 639-1 code nor a language name docqueue "
                           "knows (e.g. de, German)")
        return v

    def generation_options(self) -> dict[str, Any]:
        """The abstractive engine's ``generate`` options this submission sets."""
        return self.model_dump(include={"num_beams", "max_length", "min_length", "length_penalty",
                                        "no_repeat_ngram_size"}, exclude_none=True)


class TranslateParams(TaskParams):
    """``translate``: into ``to``, from ``from`` (or detected per document)."""

    task: ClassVar[str] = TRANSLATE

    to: str = Field(description="Target language (ISO 639-1)", json_schema_extra={"pattern": _LANGUAGE.pattern})
    source: str = Field(default="auto", alias="from", description=(
        "Source language, or auto: detected per document on the worker"),
        json_schema_extra={"anyOf": [{"const": "auto"}, {"type": "string", "pattern": _LANGUAGE.pattern,
                                                         "description": "ISO 639-1 code (two letters), e.g. en, de"}]})
    num_beams: int | None = Field(default=None, ge=1, description="Beam width [default: the model's]")
    max_new_tokens: int | None = Field(default=None, ge=1, description=(
        "llm: most tokens of one chunk's translation, within the worker's DOCQUEUE_LLM_MAX_NEW_TOKENS "
        "[default: 512]"))

    @field_validator("to")
    @classmethod
    def _target(cls, v: str) -> str:
        return _language_code(v, "to")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        return _language_code(v, "from", allow_auto=True)


class ReviewParams(TaskParams):
    """``review``: clauses in the CUAD categories, key fields and risks."""

    task: ClassVar[str] = REVIEW

    categories: list[str] | None = Field(default=None, min_length=1, description=(
        "CUAD categories to report clauses for, spelled as CUAD does [default: all 41]; fields and risks always "
        "use every category"), json_schema_extra={"items": {"enum": list(CUAD_CATEGORIES)}})
    min_score: float | None = Field(default=None, ge=0, le=1, description=(
        "Report clauses scoring at least this instead of the calibrated per-category thresholds"))
    engine: Literal["prototypes", "fine-tuned", "llm"] | None = Field(default=None, description=(
        "prototypes or fine-tuned: clauses scored by an encoder; llm: a causal LM answers JSON held to a schema "
        "and its quotes are found in the text [default: the kind of model]"))
    max_new_tokens: int | None = Field(default=None, ge=1, description=(
        "llm: most tokens of one window's answer, within the worker's DOCQUEUE_LLM_MAX_NEW_TOKENS [default: 1024]"))

    @field_validator("categories")
    @classmethod
    def _cuad(cls, v: list[str] | None) -> list[str] | None:
        # any case or spacing names a category; results always spell it as CUAD does
        if v is None:
            return None
        unknown = [c for c in v if canonical_category(c) is None]
        if unknown:
            raise _invalid(f"not CUAD categories: {', '.join(unknown)}; one of: {'; '.join(CUAD_CATEGORIES)} "
                           "(docs/tasks/review.md)")
        return list(dict.fromkeys(str(canonical_category(c)) for c in v))


class GenerateParams(TaskParams):
    """``generate``: chat completions, one request per document (``docqueue.chat.ChatRequest``, the
    document's text). The params are the batch's: ``model`` runs every request, whatever its ``body.model``."""

    task: ClassVar[str] = GENERATE
    contract_note: ClassVar[str] = (
        "Each document's text is one chat-completions request body as JSON (docqueue.chat.ChatRequest: the body of "
        "an OpenAI Batch API line); a text that is not fails alone with invalid_request. model, when given, runs "
        "every request of the message instead of each body's model.")


#: Each task's params model: the one place a task's params are defined.
PARAMS_MODELS: dict[str, type[TaskParams]] = {
    model.task: model for model in (ClassifyParams, SummarizeParams, TranslateParams, ReviewParams, GenerateParams)}


def known_params(task: str) -> list[str]:
    """The params ``task`` understands, as spelled on the wire, sorted."""
    fields = PARAMS_MODELS[task].model_fields
    return sorted(f.alias or name for name, f in fields.items())


def _summary(model: type[TaskParams], e: ValidationError) -> ParamsError:
    errors = e.errors()
    unknown = sorted(str(err["loc"][0]) for err in errors if err["type"] == "extra_forbidden" and err["loc"])
    if unknown:
        known = sorted(f.alias or name for name, f in model.model_fields.items())
        return ParamsError(f"unknown parameter(s) for {model.task}: {', '.join(unknown)} (known: {', '.join(known)})")
    first = errors[0]
    loc = first["loc"]
    field = str(loc[0]) if loc else None
    if first["type"] == "invalid_params":
        return ParamsError(first["msg"], field)
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
    return ParamsError(f"`{field}`{where}: {first['msg']}" if field else first["msg"], field)


def parse_params(task: str, raw: Mapping[str, Any] | None, limits: Limits | None = None) -> TaskParams:
    """``raw`` validated as ``task``'s model (:meth:`TaskParams.of`)."""
    return PARAMS_MODELS[task].of(raw, limits)
