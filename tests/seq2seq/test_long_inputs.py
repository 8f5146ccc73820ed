"""A long document is translated in full but streamed: window by window, a group of sentences at a
time, so no tokenizer call and no generate call ever sees more than a bounded slice of it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from docqueue.names import TRANSLATE
from docqueue.params import parse_params
from docqueue.settings import get_settings
from tests.seq2seq.conftest import long_english
from workers.engines import translate
from workers.engines.seq2seq import Seq2SeqModel
from workers.engines.translate import Translator
from workers.engines.windows import window_chars
from workers.registry import Registry


def typed(raw: dict[str, Any]) -> Any:
    """Params as the pipeline hands them to an engine (validated by docqueue.params)."""
    return parse_params(TRANSLATE, raw)


PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@pytest.mark.slow  # long documents through a model in this process
def test_a_long_document_streams_through_the_translator(tiny_models: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translate, "GROUP_WINDOWS", 1)  # one window per group: several groups here
    counted: list[int] = []
    generated: list[int] = []
    count, generate = Seq2SeqModel.count_tokens, Seq2SeqModel.generate

    def counting(self: Seq2SeqModel, texts: Any) -> list[int]:
        counted.append(sum(len(t) for t in texts))
        return count(self, texts)

    def generating(self: Seq2SeqModel, texts: Any, options: Any = None) -> list[str]:
        generated.append(sum(len(t) for t in texts))
        return generate(self, texts, options)

    monkeypatch.setattr(Seq2SeqModel, "count_tokens", counting)
    monkeypatch.setattr(Seq2SeqModel, "generate", generating)
    engine = Registry(get_settings(device="cpu", translate_models={"en-de": str(tiny_models["marian"])})
                      ).get("translate")
    assert isinstance(engine, Translator)
    # one paragraph far longer than a window (no blank line to split at), then a few ordinary ones
    doc = long_english(paragraphs=1, sentences=160, seed=3) + "\n\n" + long_english(paragraphs=3, sentences=4)
    [out] = engine.run([doc], typed({"to": "de", "from": "en"}))
    assert isinstance(out, dict), out
    model = engine.models.get(str(tiny_models["marian"]))
    size = window_chars(model.max_input_tokens)
    assert len(doc) > 3 * size
    # every sentence was translated (one output per unit; nothing dropped) and the layout is kept
    assert len(PARAGRAPH_BREAK.split(out["translation"])) == 4
    assert len(generated) >= 3  # streamed: several groups, not one call for the whole document
    assert max(generated) <= 2 * size and max(counted) <= 2 * size
    assert sum(generated) >= 0.9 * len(doc.replace("\n\n", ""))  # all of it, not a sample
