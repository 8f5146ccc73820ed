"""Tiny randomly initialised causal LMs with a locally trained tokenizer, built offline.

Adapted from the project recipe ``shared/recipes/build_tiny_llm.py`` (transformers 5.x), plus a third
model with a different chat template (Gemma-style turns, no system role), so the engine is tested on
more than one template. Their output is noise: tests check what the engine enforces (answers inside
the label set, JSON valid against its schema, windows, provenance), never quality.

- ``llama-chat``: Llama architecture, ChatML template, eos ``<|im_end|>``;
- ``gpt2-base``: GPT-2 with no chat template (completion-style prompts);
- ``gemma-chat``: Llama architecture, ``<start_of_turn>user ... <end_of_turn>`` template.
"""

from __future__ import annotations

import random
from pathlib import Path

_WORDS = ("the a contract party agreement shall must may pay invoice within days notice term clause "
         "law court buyer seller service provider client document summary translate report data "
         "confidential terminate renew liability damages breach warranty license fee tax year month "
         "is are was be will not and or of to in on for by with this that each any all label answer "
         "json true false null name text quote start end category")
WORDS = tuple(_WORDS.split(" "))
CJK = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>"]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
GEMMA = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
         "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n{{ m['content'] }}<end_of_turn>\n"
         "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
#: The Llama models' context: small, so a long test document must be windowed.
CONTEXT = 512


def _corpus(seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 18))) + rng.choice(".?!:,{}[]\"")
           for _ in range(3000)]
    out += ["".join(rng.choice(CJK) for _ in range(rng.randint(5, 30))) + "。" for _ in range(500)]
    out += ['{"label": "invoice", "score": 0.9, "quotes": ["a", "b"], "n": 12345, "ok": true}'] * 200
    return out


def _tokenizer(eos: str, pad: str | None, bos: str | None, template: str | None):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_corpus(), trainers.BpeTrainer(
        vocab_size=1500, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad, bos_token=bos, unk_token=None)
    if template:
        fast.chat_template = template
    fast.padding_side = "left"
    return fast


def _llama(out: Path, eos_token: str, template: str) -> Path:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    fast = _tokenizer(eos_token, "<|endoftext|>", None, template)
    fast.save_pretrained(out)
    eos, pad = fast.convert_tokens_to_ids(eos_token), fast.convert_tokens_to_ids("<|endoftext|>")
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT,
                         eos_token_id=eos, pad_token_id=pad, bos_token_id=None, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out)
    GenerationConfig(eos_token_id=eos, pad_token_id=pad, max_new_tokens=32, do_sample=False).save_pretrained(out)
    return out


def build_llama_chat(out: Path) -> Path:
    return _llama(out, "<|im_end|>", CHATML)


def build_gemma_chat(out: Path) -> Path:
    return _llama(out, "<end_of_turn>", GEMMA)


def build_gpt2_base(out: Path) -> Path:
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    base = _tokenizer("<|endoftext|>", None, "<|endoftext|>", None)
    base.save_pretrained(out)
    eot = base.convert_tokens_to_ids("<|endoftext|>")
    GPT2LMHeadModel(GPT2Config(vocab_size=len(base), n_positions=CONTEXT, n_embd=32, n_layer=2, n_head=4,
                               bos_token_id=eot, eos_token_id=eot)).save_pretrained(out)
    GenerationConfig(eos_token_id=eot, pad_token_id=eot, max_new_tokens=32, do_sample=False).save_pretrained(out)
    return out


def build_all(root: Path) -> dict[str, str]:
    """The three tiny causal LMs side by side under ``root`` (one folder: one ``model_dirs`` entry),
    by kind: ``llama`` (ChatML chat), ``gemma`` (another chat template) and ``gpt2`` (a base model)."""
    return {"llama": str(build_llama_chat(root / "llama-chat")), "gpt2": str(build_gpt2_base(root / "gpt2-base")),
            "gemma": str(build_gemma_chat(root / "gemma-chat"))}
