"""Each task's ``submit`` options and how they become the JSON ``params`` of its messages.

Kept apart from any one command so ``submit <task>``, ``schedule add NAME ... <task>`` and
``docqueue watch DIR <task>`` take the same options with the same help and turn them into the same
params: a schedule stores exactly the params its submit would send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from docqueue import model_store
from docqueue.languages import code_for
from docqueue.names import CLASSIFY, GENERATE, REVIEW, SUMMARIZE, TRANSLATE
from docqueue.params import Limits, ParamsError, known_params, parse_params
from docqueue.settings import Settings, model_store_dir
from producer.classify_options import classify_params

Decorator = Callable[[Any], Any]


@dataclass(frozen=True)
class TaskSpec:
    """One task's options (Click decorators, outermost first) and how they become raw params."""

    name: str
    help: str
    options: tuple[Decorator, ...]
    raw: Callable[[Settings, dict[str, Any]], dict[str, Any]]

    def build(self, settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
        """The ``params`` of this task's messages from a command's task options, checked."""
        return checked_params(settings, self.name, self.raw(settings, options))

    def apply(self, f: Any) -> Any:
        for decorator in reversed(self.options):
            f = decorator(f)
        return f

    def option_names(self) -> set[str]:
        """Names of the keyword arguments these options hand to a command (what ``build`` reads)."""
        probe = self.apply(click.command()(lambda **_: None))
        return {p.name for p in probe.params if p.name and p.expose_value}


#: How the CLI spells a param in an error message, where it is not ``--`` + the param's name.
OPTION_NAMES: dict[str, str] = {"num_beams": "--beams", "examples": "--examples", "source": "--from"}


def option_name(param: str) -> str:
    """The option that sets ``param`` (``model_revision`` -> ``--model-revision``)."""
    return OPTION_NAMES.get(param, "--" + param.replace("_", "-"))


def checked_params(settings: Settings, task: str, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` checked by the task's params model (``docqueue.params``, the same rules the worker
    applies) and returned as it travels; a broken rule is a usage error naming the options."""
    try:
        typed = parse_params(task, raw, Limits.of(settings))
    except ParamsError as e:
        names = {name: option_name(name) for name in known_params(task)}
        raise click.UsageError(e.render(names)) from None
    return typed.wire()


def _set(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def language_name(value: str | None, name: str) -> str | None:
    """A language given by code or English name, as its ISO 639-1 code (names: docqueue.languages)."""
    if value is None:
        return None
    code = code_for(value)
    if code is None:
        raise click.BadParameter(f"{value!r} is neither an ISO 639-1 code nor a language name docqueue knows "
                                 "(e.g. de, German)", param_hint=name)
    return code


MODEL_OPTIONS = (
    click.option("--model", envvar="DOCQUEUE_SUBMIT_MODEL", show_envvar=True, default=None,
                 help="Model for this batch (HF id in the worker's HF cache, or a path on the worker) "
                      "[default: the worker's configured model]."),
    click.option("--model-revision", envvar="DOCQUEUE_SUBMIT_MODEL_REVISION", show_envvar=True, default=None,
                 help="Revision (branch, tag or commit) of --model."),
)

# ---------------------------------------------------------------------------------------- classify
CLASSIFY_OPTIONS = (
    click.option("--labels", envvar="DOCQUEUE_LABELS", show_envvar=True,
                 help="Comma-separated candidate labels, e.g. 'contract,invoice,news,email'."),
    click.option("--labels-file", envvar="DOCQUEUE_LABELS_FILE", show_envvar=True,
                 type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="Labels with descriptions: JSON {label: description} or lines 'label: description'. "
                      "Common document kinds (contract, invoice, e-mail, news, ...) have built-in ones; yours win."),
    click.option("--examples", "examples_file", envvar="DOCQUEUE_EXAMPLES", show_envvar=True,
                 type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help='Few-shot: JSONL of labelled examples {"text": ..., "label": ...} that steer the embedding '
                      "engine (no training). Without --labels, their labels are the label set."),
    click.option("--engine", type=click.Choice(["auto", "embedding", "nli", "fine-tuned", "llm"]), default="auto",
                 envvar="DOCQUEUE_CLASSIFY_ENGINE", show_envvar=True,
                 help="auto: what the model is (sentence encoder -> embedding, entailment head -> nli, other "
                      "classification head -> fine-tuned, causal LM -> llm). nli without --model uses "
                      "DOCQUEUE_CLASSIFY_NLI_MODEL, llm DOCQUEUE_LLM_MODEL."),
    click.option("--model", envvar="DOCQUEUE_SUBMIT_MODEL", show_envvar=True,
                 help="Model for this submission (HF id in the HF cache, or local path) [default: the worker's "
                      "DOCQUEUE_CLASSIFY_MODEL]."),
    click.option("--model-revision", envvar="DOCQUEUE_SUBMIT_MODEL_REVISION", show_envvar=True,
                 help="Revision (branch, tag or commit) of --model."),
    click.option("--multi-label", is_flag=True, envvar="DOCQUEUE_MULTI_LABEL", show_envvar=True,
                 help="Each label judged on its own: 'labels' lists every label scoring at least --threshold."),
    click.option("--threshold", type=click.FloatRange(0.0, 1.0), envvar="DOCQUEUE_THRESHOLD", show_envvar=True,
                 default=None, help="With --multi-label: the score a label needs to be listed [default: 0.5]."),
    click.option("--template", envvar="DOCQUEUE_TEMPLATE", show_envvar=True,
                 help="Hypothesis for each label, {} marks the label [default: 'Type of document: {}.'; "
                      "nli: 'This example is {}.']."),
)


def _classify(settings: Settings, o: dict[str, Any]) -> dict[str, Any]:
    # a model of the store (`docqueue train`) knows its labels, like a fine-tuned classifier
    stored = bool(o["model"]) and model_store.parse_spec(o["model"]) is not None and bool(
        model_store.versions(model_store_dir(settings), o["model"].split("@")[0]))
    return classify_params(labels=o["labels"], labels_file=o["labels_file"], examples_file=o["examples_file"],
                           engine="fine-tuned" if stored and o["engine"] == "auto" else o["engine"],
                           model=o["model"], model_revision=o["model_revision"],
                           multi_label=o["multi_label"], threshold=o["threshold"], template=o["template"],
                           nli_model=settings.classify_nli_model)


# --------------------------------------------------------------------------------------- summarize
SUMMARIZE_OPTIONS = (
    *MODEL_OPTIONS,
    click.option("--engine", type=click.Choice(["extractive", "abstractive", "llm"]), default=None,
                 envvar="DOCQUEUE_SUMMARIZE_ENGINE", show_envvar=True,
                 help="extractive: the document's key sentences, offline on MiniLM; abstractive: a seq2seq model "
                      "writes the summary (needs DOCQUEUE_SUMMARIZE_MODEL on the worker); llm: a causal LM "
                      "(--model, else DOCQUEUE_LLM_MODEL) [default: extractive]."),
    click.option("--style", type=click.Choice(["paragraph", "bullets", "tldr"]), default=None,
                 envvar="DOCQUEUE_SUMMARIZE_STYLE", show_envvar=True,
                 help="llm: the summary's form [default: paragraph]."),
    click.option("--max-words", type=click.IntRange(1, 5000), default=None, envvar="DOCQUEUE_SUMMARIZE_MAX_WORDS",
                 show_envvar=True, help="llm: most words the summary is asked to have."),
    click.option("--summary-language", default=None, envvar="DOCQUEUE_SUMMARY_LANGUAGE", show_envvar=True,
                 help="llm: language of the summary, code or English name (de, German) [default: the model's]."),
    click.option("--max-new-tokens", type=click.IntRange(1, 100_000), default=None,
                 envvar="DOCQUEUE_SUMMARIZE_MAX_NEW_TOKENS", show_envvar=True,
                 help="llm: most tokens the summary may have, within the worker's limit [default: 200]."),
    click.option("--sentences", type=click.IntRange(1, 100), default=3, envvar="DOCQUEUE_SUMMARIZE_SENTENCES",
                 show_envvar=True, help="Extractive: sentences in the summary."),
    click.option("--beams", type=click.IntRange(1, 16), default=None, envvar="DOCQUEUE_SUMMARIZE_BEAMS",
                 show_envvar=True, help="Abstractive: beam search width [default: the model's]."),
    click.option("--max-length", type=click.IntRange(4, 2048), default=None,
                 envvar="DOCQUEUE_SUMMARIZE_MAX_LENGTH", show_envvar=True,
                 help="Abstractive: most tokens in the summary [default: the model's]."),
    click.option("--min-length", type=click.IntRange(0, 2048), default=None,
                 envvar="DOCQUEUE_SUMMARIZE_MIN_LENGTH", show_envvar=True,
                 help="Abstractive: fewest tokens in the summary [default: the model's]."),
    click.option("--length-penalty", type=float, default=None, envvar="DOCQUEUE_SUMMARIZE_LENGTH_PENALTY",
                 show_envvar=True, help="Abstractive: >1 favours longer summaries, <1 shorter [default: the model's]."),
    click.option("--language", default="en", envvar="DOCQUEUE_SUMMARIZE_LANGUAGE", show_envvar=True,
                 help="Language of the documents (ISO 639-1), for finding sentence boundaries."),
)


def _summarize(settings: Settings, o: dict[str, Any]) -> dict[str, Any]:
    engine = o["engine"] or settings.summarize_engine
    params = _set(engine=engine, language=o["language"], model=o["model"], model_revision=o["model_revision"])
    if engine == "extractive":
        params["sentences"] = o["sentences"]
    elif engine == "llm":
        params.update(_set(style=o["style"], max_words=o["max_words"], max_new_tokens=o["max_new_tokens"],
                           summary_language=language_name(o["summary_language"], "--summary-language")))
    else:
        params.update(_set(num_beams=o["beams"], max_length=o["max_length"], min_length=o["min_length"],
                           length_penalty=o["length_penalty"]))
    return params


# --------------------------------------------------------------------------------------- translate
TRANSLATE_OPTIONS = (
    *MODEL_OPTIONS,
    click.option("--to", "target", required=True, envvar="DOCQUEUE_TRANSLATE_TO", show_envvar=True,
                 help="Target language, ISO 639-1 code or English name (de, German)."),
    click.option("--max-new-tokens", type=click.IntRange(1, 100_000), default=None,
                 envvar="DOCQUEUE_TRANSLATE_MAX_NEW_TOKENS", show_envvar=True,
                 help="llm: most tokens of one chunk's translation, within the worker's limit [default: 512]."),
    click.option("--from", "source", default="auto", envvar="DOCQUEUE_TRANSLATE_FROM", show_envvar=True,
                 help="Source language, ISO 639-1, or 'auto' to detect it per document on the worker."),
    click.option("--beams", type=click.IntRange(1, 16), default=None, envvar="DOCQUEUE_TRANSLATE_BEAMS",
                 show_envvar=True, help="Beam search width [default: the model's]."),
)


def _translate(settings: Settings, o: dict[str, Any]) -> dict[str, Any]:
    return _set(to=language_name(o["target"], "--to"), model=o["model"], model_revision=o["model_revision"],
                num_beams=o["beams"], max_new_tokens=o["max_new_tokens"], **{"from": o["source"]})


# ------------------------------------------------------------------------------------------ review
REVIEW_OPTIONS = (
    *MODEL_OPTIONS,
    click.option("--categories", envvar="DOCQUEUE_REVIEW_CATEGORIES", show_envvar=True,
                 help="Comma-separated CUAD categories to report clauses for, e.g. 'Governing Law,Cap on "
                      "Liability' [default: all 41]; fields and risks always use every category."),
    click.option("--min-score", type=click.FloatRange(0, 1), default=None, envvar="DOCQUEUE_REVIEW_MIN_SCORE",
                 show_envvar=True, help="Report clauses scoring at least this instead of the calibrated "
                                        "per-category thresholds (lower: more recall, less precision)."),
    click.option("--engine", type=click.Choice(["prototypes", "fine-tuned", "llm"]), default=None,
                 envvar="DOCQUEUE_REVIEW_ENGINE", show_envvar=True,
                 help="prototypes/fine-tuned: an encoder scores clauses; llm: a causal LM (--model, else "
                      "DOCQUEUE_LLM_MODEL) answers JSON held to a schema, its quotes found in the text "
                      "[default: the kind of the model]."),
    click.option("--max-new-tokens", type=click.IntRange(1, 100_000), default=None,
                 envvar="DOCQUEUE_REVIEW_MAX_NEW_TOKENS", show_envvar=True,
                 help="llm: most tokens of one window's answer, within the worker's limit [default: 1024]."),
)


def _review(settings: Settings, o: dict[str, Any]) -> dict[str, Any]:
    categories = [n.strip() for n in (o["categories"] or "").split(",") if n.strip()] or None
    return _set(categories=categories, min_score=o["min_score"], model=o["model"],
                model_revision=o["model_revision"], engine=o["engine"], max_new_tokens=o["max_new_tokens"])


# ---------------------------------------------------------------------------------------- generate
GENERATE_OPTIONS = (
    click.option("--model", envvar="DOCQUEUE_SUBMIT_MODEL", show_envvar=True, default=None,
                 help="Model for every request of the file, instead of each line's body.model (HF id in the "
                      "worker's HF cache, or a path on the worker) [default: each line's body.model, else the "
                      "worker's DOCQUEUE_LLM_MODEL]."),
    MODEL_OPTIONS[1],
)


def _generate(settings: Settings, o: dict[str, Any]) -> dict[str, Any]:
    return _set(model=o["model"], model_revision=o["model_revision"])


TASK_SPECS: dict[str, TaskSpec] = {
    CLASSIFY: TaskSpec(CLASSIFY, "Classify files, folders (recursive) and globs: zero-shot over your labels, "
                       "few-shot with your examples, or with a fine-tuned classifier's own labels.",
                       CLASSIFY_OPTIONS, _classify),
    SUMMARIZE: TaskSpec(SUMMARIZE, "Summarise files, folders and globs; long documents are summarised chunk by "
                        "chunk, then the chunk summaries again (map-reduce).", SUMMARIZE_OPTIONS, _summarize),
    TRANSLATE: TaskSpec(TRANSLATE, "Translate files, folders and globs, keeping paragraphs; the model is chosen "
                        "per language pair (DOCQUEUE_TRANSLATE_MODELS on the worker) unless --model names one.",
                        TRANSLATE_OPTIONS, _translate),
    REVIEW: TaskSpec(REVIEW, "Review contracts: clauses in the 41 CUAD categories with character offsets, key "
                     "fields (parties, dates, governing law, renewal) and risk flags.", REVIEW_OPTIONS, _review),
    GENERATE: TaskSpec(GENERATE, "Chat completions from OpenAI Batch API input files (JSONL, one request per line: "
                       "custom_id, method, url /v1/chat/completions, body); `docqueue results B --format "
                       "openai-batch` writes OpenAI's output file.", GENERATE_OPTIONS, _generate),
}


def split_task_options(spec: TaskSpec, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(task options, the rest)`` of a command's keyword arguments."""
    names = spec.option_names()
    return {k: v for k, v in kwargs.items() if k in names}, {k: v for k, v in kwargs.items() if k not in names}
