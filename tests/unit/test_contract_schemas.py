"""The shipped JSON Schemas are valid draft 2020-12, agree with the core's own rules (task params,
CUAD categories, task names, the batch id pattern) and accept/refuse what the worker does."""

from __future__ import annotations

import json

import jsonschema
import pytest

from docqueue import contract
from docqueue.contract_categories import CUAD_CATEGORIES
from docqueue.names import TASK_TYPES, task_name
from docqueue.params import known_params
from docqueue.schema import BATCH_ID_MAX_LENGTH, BATCH_ID_PATTERN, DOCUMENT_ID_MAX_LENGTH, TaskMessage


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = contract.load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_every_shipped_schema_is_valid_draft_2020_12() -> None:
    names = contract.available()
    expected = {"envelope", *(f"{t}.{kind}" for t in TASK_TYPES for kind in ("message", "result"))}
    assert expected <= set(names), names
    for name in names:
        schema = contract.load(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("task", TASK_TYPES)
def test_message_schema_lists_exactly_the_params_the_worker_accepts(task: str) -> None:
    schema = contract.load(f"{task}.message")
    params = schema["properties"]["params"]
    assert params["additionalProperties"] is False
    assert sorted(params["properties"]) == known_params(task)
    batch = schema["properties"]["batch"]
    assert batch["pattern"] == BATCH_ID_PATTERN and batch["maxLength"] == BATCH_ID_MAX_LENGTH
    assert schema["$defs"]["document"]["properties"]["id"]["maxLength"] == DOCUMENT_ID_MAX_LENGTH


def test_cuad_categories_and_task_names_match_the_core() -> None:
    review = contract.load("review.message")["properties"]["params"]["properties"]["categories"]
    assert tuple(review["items"]["enum"]) == CUAD_CATEGORIES
    result = contract.load("review.result")["properties"]["clauses"]["items"]["properties"]["category"]
    assert tuple(result["enum"]) == CUAD_CATEGORIES
    tasks = contract.load("envelope")["properties"]["headers"]["properties"]["task"]["enum"]
    assert tasks == [task_name(t) for t in TASK_TYPES]


def test_schema_and_worker_agree_on_good_and_bad_messages() -> None:
    classify = _validator("classify.message")
    good = {"v": 1, "batch": "crm-42", "params": {"labels": ["a", "b"], "multi_label": True},
            "documents": [{"id": "t-1", "text": "hello", "metadata": {"owner": "ops"}}]}
    assert not list(classify.iter_errors(good))
    TaskMessage.decode(good)
    # what the worker dead-letters whole (invalid_message), the schema refuses too
    for bad in ({**good, "v": 2}, {k: v for k, v in good.items() if k != "batch"}, {**good, "documents": []},
                {**good, "jobs": ["0" * 32]}, {**good, "extra": 1}, {**good, "batch": "bad batch id"}):
        assert list(classify.iter_errors(bad)), bad
        with pytest.raises(Exception, match="invalid docqueue message"):
            TaskMessage.decode(bad)
    # a typo in params is refused by the schema (and fails each document with invalid_params)
    typo = {**good, "params": {"labels": ["a", "b"], "mutli_label": True}}
    assert any("mutli_label" in e.message for e in classify.iter_errors(typo))
    translate = _validator("translate.message")
    no_target = {"v": 1, "batch": "b", "params": {"from": "auto"}, "documents": [{"id": "1", "text": "x"}]}
    assert any("'to' is a required property" in e.message for e in translate.iter_errors(no_target))


def test_load_names_what_is_shipped_when_a_schema_is_missing() -> None:
    with pytest.raises(FileNotFoundError, match=r"shipped: .*envelope"):
        contract.load("nonexistent.message")
    assert json.loads(contract.path("envelope").read_text())["title"].startswith("docqueue envelope")
