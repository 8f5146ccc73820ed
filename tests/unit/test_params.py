"""The params contract written once (docqueue.params): the shipped message schemas are what the models
generate, the models hold every rule, and the CLI and the worker report a broken rule each in their
own words (options for the CLI, ``invalid_params`` for the worker)."""

from __future__ import annotations

from typing import Any

import click
import jsonschema
import pytest

from docqueue import contract
from docqueue.contract import generate
from docqueue.errors import DocumentError
from docqueue.names import CLASSIFY, REVIEW, SUMMARIZE, TASK_TYPES, TRANSLATE
from docqueue.params import PARAMS_MODELS, ClassifyParams, Limits, ParamsError, known_params, parse_params
from docqueue.schema import TaskMessage
from docqueue.settings import get_settings
from producer.taskopts import checked_params
from workers.pipeline import typed_params


@pytest.mark.parametrize("task", TASK_TYPES)
def test_shipped_message_schema_is_the_generated_one(task: str) -> None:
    shipped = contract.path(f"{task}.message").read_text(encoding="utf-8")
    assert shipped == generate.render(task), f"run python -m docqueue.contract.generate ({task})"


def test_the_check_names_a_stale_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert generate.main(["--check"]) == 0
    stale = tmp_path / "classify.message.schema.json"
    stale.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(generate, "path", lambda name: tmp_path / f"{name}.schema.json")
    assert "classify.message" in generate.stale()
    assert generate.main(["--check"]) == 1


@pytest.mark.parametrize("task", TASK_TYPES)
def test_every_model_is_frozen_strict_and_closed(task: str) -> None:
    model = PARAMS_MODELS[task]
    assert model.model_config.get("frozen") and model.model_config.get("extra") == "forbid"
    with pytest.raises(ParamsError, match=rf"unknown parameter\(s\) for {task}: bogus \(known: "):
        parse_params(task, {"bogus": 1, **({"to": "de"} if task == TRANSLATE else {}),
                            **({"labels": ["a", "b"]} if task == CLASSIFY else {})})


#: (task, params, words of the error, whether JSON Schema can say the rule too). Label and example
#: counts depend on the deployment, and cross-field rules on more than a schema says.
CASES: list[tuple[str, dict[str, Any], str, bool]] = [
    (CLASSIFY, {"labels": ["only"]}, "at least two labels", False),
    (CLASSIFY, {"labels": ["a", "b"], "examples": [{"text": "x", "label": "c"}]}, "missing from the label set: c",
     False),
    (CLASSIFY, {"labels": ["a", "b"], "template": "no slot"}, "put {} where the label goes", True),
    (CLASSIFY, {"examples": [{"text": "x", "label": "a"}, {"text": "y", "label": "b"}], "engine": "nli"},
     "cannot use them", False),
    (CLASSIFY, {"labels": ["a", "b"], "multi_label": "true"}, "'multi_label': Input should be a valid boolean", True),
    (CLASSIFY, {"labels": ["a", "b"], "threshold": True}, "'threshold'", True),
    (CLASSIFY, {"labels": ["a", "b"], "threshold": 1.5}, "'threshold'", True),
    (CLASSIFY, {"labels": ["a", " "]}, "'labels' must be a list of label names", False),
    (CLASSIFY, {"labels": ["a", "b"], "examples": [{"text": "x"}]}, "'examples'[0].label: Field required", True),
    (SUMMARIZE, {"language": "eng"}, "'language' 'eng' is not an ISO 639-1 code", True),
    (SUMMARIZE, {"sentences": 0}, "'sentences'", True),
    (SUMMARIZE, {"engine": "magic"}, "'engine'", True),
    (SUMMARIZE, {"model_revision": "main"}, "'model_revision' needs 'model'", True),
    (TRANSLATE, {"from": "auto"}, "'to': Field required", True),
    (TRANSLATE, {"to": "de", "from": "english"}, "'from' 'english' is not an ISO 639-1 code", True),
    (REVIEW, {"categories": ["Warranty", "Nope"]}, "not CUAD categories: Warranty, Nope", True),
    (REVIEW, {"min_score": 2}, "'min_score'", True),
]


@pytest.mark.parametrize(("task", "raw", "words", "in_schema"), CASES)
def test_a_broken_rule_is_invalid_params_for_each_document(task: str, raw: dict[str, Any], words: str,
                                                           in_schema: bool) -> None:
    error = typed_params(task, raw, get_settings())
    assert isinstance(error, DocumentError) and error.kind == "invalid_params" and words in error.message, error
    if in_schema:  # the published schema refuses the same message
        message = {"v": 1, "batch": "b-1", "params": raw, "documents": [{"id": "1", "text": "x"}]}
        assert list(jsonschema.Draft202012Validator(contract.load(f"{task}.message")).iter_errors(message)), raw


def test_the_cli_names_options_not_params() -> None:
    settings = get_settings()
    with pytest.raises(click.UsageError, match="--model-revision needs --model"):
        checked_params(settings, SUMMARIZE, {"model_revision": "main"})
    with pytest.raises(click.UsageError, match="--from 'english' is not an ISO 639-1 code"):
        checked_params(settings, TRANSLATE, {"to": "de", "from": "english"})
    with pytest.raises(click.UsageError, match="--examples steer the embedding engine; --engine nli cannot"):
        checked_params(settings, CLASSIFY, {"examples": [{"text": "x", "label": "a"}, {"text": "y", "label": "b"}],
                                            "engine": "nli"})
    with pytest.raises(click.UsageError, match="3 labels; at most 2"):
        checked_params(get_settings(classify_max_labels=2), CLASSIFY, {"labels": ["a", "b", "c"]})


def test_what_travels_is_normalised_and_only_what_was_set() -> None:
    settings = get_settings()
    assert checked_params(settings, TRANSLATE, {"to": "DE", "from": "Auto"}) == {"to": "de", "from": "auto"}
    assert checked_params(settings, REVIEW, {"categories": ["governing law", "Governing Law"]}) == {
        "categories": ["Governing Law"]}
    assert checked_params(settings, CLASSIFY, {"labels": [" a ", "b", "a"]}) == {"labels": ["a", "b"]}
    # what travels validates against the published schema and the worker reads it back the same
    wire = checked_params(settings, SUMMARIZE, {"engine": "abstractive", "language": "DE", "num_beams": 2})
    message = {"v": 1, "batch": "b-1", "params": wire, "documents": [{"id": "1", "text": "x"}]}
    assert not list(jsonschema.Draft202012Validator(contract.load("summarize.message")).iter_errors(message))
    typed = TaskMessage.decode(message).typed_params(SUMMARIZE)
    assert typed.wire() == wire and typed.generation_options() == {"num_beams": 2}  # type: ignore[attr-defined]


def test_labels_come_from_the_examples_and_limits_come_from_settings() -> None:
    examples = [{"text": "x", "label": "b "}, {"text": "y", "label": "a"}, {"text": "z", "label": "b"}]
    params = parse_params(CLASSIFY, {"examples": examples})
    assert isinstance(params, ClassifyParams) and params.labels == ["b", "a"]
    with pytest.raises(ParamsError, match="3 examples; at most 2"):
        parse_params(CLASSIFY, {"examples": examples}, Limits(max_examples=2))
    # a fine-tuned model brings its own labels (and earlier producers sent an empty list for them)
    assert parse_params(CLASSIFY, {"engine": "fine-tuned", "labels": []}).labels == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("task", TASK_TYPES)
def test_known_params_are_the_schema_properties(task: str) -> None:
    properties = contract.load(f"{task}.message")["properties"]["params"]["properties"]
    assert sorted(properties) == known_params(task)
