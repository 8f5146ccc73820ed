"""Tiny sequence-classification models built offline in the test session (no hub needed).

Adapted from the project's recipe ``build_tiny_models.py`` (``build_distilbert_cls`` and
``build_minilm_cls``). They are saved with ``save_pretrained`` and then loaded by the very code that
loads a hub model, so the loading, engine selection and scoring paths are the real ones; only the
weights are random (a fresh classification head).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    PreTrainedTokenizerFast,
)

_VOCABULARY = ("the a contract party agreement shall must may pay invoice within days notice term clause "
               "law court buyer seller service provider client document summary translate report data "
               "confidential terminate renew liability damages breach warranty license fee tax year month "
               "is are was be will not and or of to in on for by with this that each any all")
WORDS = _VOCABULARY.split()

CLS_LABELS = ["contract", "invoice", "other"]
NLI_LABELS = ["entailment", "neutral", "contradiction"]


def _corpus(n: int = 2000) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20))).capitalize() + "." for _ in range(n)]


def build_distilbert_cls(out: Path, labels: list[str] = CLS_LABELS, problem_type: str | None = None) -> Path:
    """A 2-layer DistilBERT classifier with a WordPiece tokenizer trained here; random weights."""
    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    tk.train_from_iterator(_corpus(), trainers.WordPieceTrainer(vocab_size=500, special_tokens=specials))
    cls_id, sep_id = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
                                  model_input_names=["input_ids", "attention_mask"])
    cfg = DistilBertConfig(vocab_size=tk.get_vocab_size(), dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                           max_position_embeddings=128, pad_token_id=0, num_labels=len(labels),
                           id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)},
                           problem_type=problem_type)
    DistilBertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_minilm_cls(out: Path, source: str, labels: list[str]) -> Path:
    """The real MiniLM encoder with a fresh classification head whose labels are ``labels``
    (``NLI_LABELS`` makes it look like an NLI model to the loader)."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)})
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out
