"""summarize and translate with a causal LM: prompts over windows sized to the model's context.

summarize map-reduces: a document over one window is summarised window by window, the summaries
joined and summarised again until they fit one prompt, which writes the summary in the style asked
(``paragraph``, ``bullets``, ``tldr``; ``max_words``; ``summary_language``). Intermediate summaries are
capped at a third of a window, so every round shrinks the text and the rounds end.
translate detects the source language (unless given), cuts each paragraph on sentence boundaries
into chunks whose translation fits the context, and joins the translations with the paragraphs'
own separators. No document is cut silently: every window is read.
All documents of a batch are generated together in each round (token-budget batches).
"""

from __future__ import annotations

from collections.abc import Sequence

from docqueue.errors import DocumentError
from docqueue.languages import code_for, name_of
from docqueue.params import SummarizeParams, TranslateParams
from workers.engines import Outcome
from workers.engines.chunking import split_paragraphs
from workers.engines.langdetect import detect_language
from workers.engines.llm.common import PromptedEngine, Usage, deadline, max_new_tokens, window_budget
from workers.engines.llm.model import Generation
from workers.engines.windows import has_text

STYLES = ("paragraph", "bullets", "tldr")
KIND = "llm"
#: Default new tokens of a summary, and of a chunk's translation (beyond its source's length).
SUMMARY_TOKENS = 200
TRANSLATION_EXTRA_TOKENS = 16


def _summary_options(params: SummarizeParams) -> tuple[str, int | None, str | None]:
    """Style, most words and summary language (validated by ``docqueue.params.SummarizeParams``)."""
    language = code_for(params.summary_language) if params.summary_language else None
    return params.style or "paragraph", params.max_words, language


class LLMSummarizer(PromptedEngine):
    """Resident engine for ``summarize`` with a causal LM."""

    engine = KIND

    def run(self, texts: Sequence[str], params: SummarizeParams) -> list[Outcome]:
        try:
            if params.engine not in (None, KIND):
                raise DocumentError("wrong_model_kind", f"model {self.model_id!r} is a causal LM: the llm engine runs "
                                    f"it, not {params.engine!r}")
            style, words, language = _summary_options(params)
            new_tokens = max_new_tokens(params.max_new_tokens, "summarize", self.limits, SUMMARY_TOKENS)
            fields = {"words": f" of at most {words} words" if words else "",
                      "language": f", in {name_of(language)}" if language else ""}
            template = f"summarize.{style}"
            budget = window_budget(self.model, self.prompter.overhead(template, **fields), new_tokens)
        except DocumentError as e:
            return [e for _ in texts]
        map_tokens = max(8, min(new_tokens, budget // 3))
        doc_language = params.language
        outcomes: list[Outcome] = [DocumentError("empty_document", "document has no text to summarise")
                                   for _ in texts]
        usage: dict[int, Usage] = {}
        pending: dict[int, list[str]] = {}
        windows: dict[int, int] = {}
        for i, text in enumerate(texts):
            if has_text(text):
                pending[i] = self.prompter.windows(text, budget, doc_language)
                windows[i] = len(pending[i])
                usage[i] = self.prompter.usage(template, do_sample=False, num_beams=1, max_new_tokens=new_tokens)
        until = deadline(self.limits)
        while pending:
            final = [i for i, parts in pending.items() if len(parts) == 1]
            jobs = [(i, None) for i in final] + [(i, k) for i, parts in pending.items() if len(parts) > 1
                                                 for k in range(len(parts))]
            prompts = [self.prompter.tokens(template, document=pending[i][k or 0], **fields) for i, k in jobs]
            try:
                finals = self.model.generate(prompts[:len(final)], new_tokens, until) if final else []
                maps = self.model.generate(prompts[len(final):], map_tokens, until) if len(jobs) > len(final) else []
            except DocumentError as e:  # the time limit: the documents still running fail with it
                for i in pending:
                    outcomes[i] = e
                break
            for i, g in zip(final, finals, strict=True):
                usage[i].add(g)
                usage[i].finish_reason = g.finish_reason
                outcomes[i] = {"summary": g.text.strip(), "engine": KIND, "chunks": windows[i], "style": style,
                               "llm": usage[i].as_json(self.model)}
                del pending[i]
            summaries: dict[int, list[str]] = {}
            for (i, _), g in zip(jobs[len(final):], maps, strict=True):
                usage[i].add(g)
                summaries.setdefault(i, []).append(g.text.strip())
            for i, parts in summaries.items():
                pending[i] = self.prompter.windows(" ".join(p for p in parts if p) or ".", budget, doc_language)
        return outcomes


class LLMTranslator(PromptedEngine):
    """Resident engine for ``translate`` with a causal LM: any pair the model speaks."""

    def run(self, texts: Sequence[str], params: TranslateParams) -> list[Outcome]:
        try:
            target = params.to
            cap = max_new_tokens(params.max_new_tokens, "translate", self.limits, 512)
            fixed_source = params.source if params.source != "auto" else None
            overhead = self.prompter.overhead("translate", source="from English ", source_name="English",
                                              target=name_of(target))
            # a chunk and its translation (about as long, plus a little) share the context
            budget = window_budget(self.model, overhead, 0) // 2
            budget = min(budget, max(8, cap - TRANSLATION_EXTRA_TOKENS))
        except DocumentError as e:
            return [e for _ in texts]
        outcomes: list[Outcome] = [DocumentError("empty_document", "document has no text to translate")
                                   for _ in texts]
        jobs: list[tuple[int, int, list[int], int]] = []  # (document, paragraph, prompt, new tokens)
        layout: dict[int, tuple[str, list[tuple[list[str], str]]]] = {}
        for i, text in enumerate(texts):
            if not has_text(text):
                continue
            source = fixed_source or detect_language(text) or "en"
            paragraphs = [(self.prompter.windows(p.text, budget, source), p.separator) for p in split_paragraphs(text)]
            layout[i] = (source, paragraphs)
            fields = {"source": f"from {name_of(source)} ", "source_name": name_of(source), "target": name_of(target)}
            for k, (chunks, _) in enumerate(paragraphs):
                for chunk in chunks:
                    prompt = self.prompter.tokens("translate", document=chunk, **fields)
                    n = self.model.count_tokens(chunk)
                    jobs.append((i, k, prompt, min(cap, 2 * n + TRANSLATION_EXTRA_TOKENS)))
        generated: list[Generation] = []
        try:
            until = deadline(self.limits)
            for new in sorted({j[3] for j in jobs}):  # one generate call per new-token length
                group = [j for j in jobs if j[3] == new]
                generated += self.model.generate([j[2] for j in group], new, until)
            ordered = [j for new in sorted({j[3] for j in jobs}) for j in jobs if j[3] == new]
        except DocumentError as e:
            return [e if i in layout else o for i, o in enumerate(outcomes)]
        pieces: dict[tuple[int, int], list[str]] = {}
        usage = {i: self.prompter.usage("translate", do_sample=False, num_beams=1, max_new_tokens=cap) for i in layout}
        for (i, k, _, _), g in zip(ordered, generated, strict=True):
            pieces.setdefault((i, k), []).append(g.text.strip())
            usage[i].add(g)
            if g.finish_reason == "length":
                usage[i].finish_reason = "length"
        for i, (source, paragraphs) in layout.items():
            text = "".join(" ".join(pieces.get((i, k), [])) + sep for k, (_, sep) in enumerate(paragraphs))
            outcomes[i] = {"translation": text, "source_language": source, "target_language": target,
                           "model": self.model_id, "chunks": sum(len(c) for c, _ in paragraphs),
                           "llm": usage[i].as_json(self.model)}
        return outcomes
