"""Tiny randomly initialised Marian and BART models with locally trained tokenizers, built offline.

The seq2seq engines are tested through the very code that loads a hub model
(``from_pretrained(path)``); these models make that possible without a download. Their outputs are
random text: tests check shapes, chunking and error paths, not translation quality.
Adapted from the project recipe ``shared/recipes/build_tiny_models.py`` (transformers 5.x).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

WORDS: tuple[str, ...] = (
    "the", "a", "contract", "party", "agreement", "shall", "must", "may", "pay", "invoice", "within", "days",
    "notice", "term", "clause", "law", "court", "buyer", "seller", "service", "provider", "client",
    "document", "summary", "translate", "report", "data", "confidential", "terminate", "renew", "liability",
    "damages", "breach", "warranty", "license", "fee", "tax", "year", "month", "is", "are", "was", "be",
    "will", "not", "and", "or", "of", "to", "in", "on", "for", "by", "with", "this", "that", "each", "any",
    "all",
)

#: Both models take at most this many tokens: a long test document is many times the window.
CONTEXT = 128


def corpus(n: int = 2000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20)))
        out.append(s.capitalize() + rng.choice([".", ".", "!", "?"]))
    return out


def build_marian(out: Path, sentences: list[str]) -> Path:
    """A Marian translation model (source.spm/target.spm/vocab.json, like opus-mt)."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    torch.manual_seed(0)
    d = out / "marian-tiny"
    d.mkdir(parents=True, exist_ok=True)
    corpus_file = out / "corpus.txt"
    corpus_file.write_text("\n".join(sentences))
    spm.SentencePieceTrainer.train(
        input=str(corpus_file), model_prefix=str(d / "sp"), vocab_size=150, model_type="unigram",
        hard_vocab_limit=False, minloglevel=2, character_coverage=1.0, unk_id=0, bos_id=-1, eos_id=1, pad_id=-1,
        unk_piece="<unk>", eos_piece="</s>",
    )
    sp = spm.SentencePieceProcessor(model_file=str(d / "sp.model"))
    os.replace(d / "sp.model", d / "source.spm")
    (d / "target.spm").write_bytes((d / "source.spm").read_bytes())
    (d / "sp.vocab").unlink()
    vocab = {"</s>": 0, "<unk>": 1}  # Marian: </s>=0, <unk>=1, pieces..., <pad>=last
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    vocab["<pad>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    tok = MarianTokenizer(source_spm=str(d / "source.spm"), target_spm=str(d / "target.spm"),
                          vocab=str(d / "vocab.json"), source_lang="en", target_lang="xx")
    pad = vocab["<pad>"]
    cfg = MarianConfig(
        vocab_size=len(vocab), d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=CONTEXT,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0,
    )
    model = MarianMTModel(cfg)
    model.generation_config.max_length = 32
    model.generation_config.num_beams = 2
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def build_bart(out: Path, sentences: list[str]) -> Path:
    """A BART summariser with a byte-level BPE tokenizer (like distilbart-cnn)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    torch.manual_seed(0)
    d = out / "bart-tiny"
    d.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(sentences, trainers.BpeTrainer(
        vocab_size=800, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tk.token_to_id("<s>")), ("</s>", tk.token_to_id("</s>"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                                  model_max_length=CONTEXT)
    cfg = BartConfig(
        vocab_size=tk.get_vocab_size(), d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=CONTEXT,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=0,
        forced_eos_token_id=2,
    )
    model = BartForConditionalGeneration(cfg)
    model.generation_config.max_length = 32
    model.generation_config.num_beams = 2
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def build_all(out: Path) -> dict[str, Path]:
    sentences = corpus()
    return {"marian": build_marian(out, sentences), "bart": build_bart(out, sentences)}
