"""classify with a causal LM: the answer is one of the labels by construction, not by parsing text.

Constrained decoding over a finite answer set is done exactly: every label's tokens (then the end of
the answer, so ``invoice`` and ``invoice-late`` differ) are scored after the prompt, and the scores
are the model's probabilities of those sequences, normalised over the labels. The answer is the
most probable label, so it is always in the set, whatever the model would have written freely;
``scores`` keep the shape of the encoder engines. With ``multi_label`` each label is its own yes/no
question (``P(yes)`` against ``P(no)``) and ``labels`` lists those at or above the threshold.
A document over the context is read in windows; a label's score is its mean over the windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from docqueue.errors import DocumentError
from docqueue.params import ClassifyParams
from workers.engines import Outcome
from workers.engines.classify_common import classification, start_outcomes
from workers.engines.llm.common import MIN_WINDOW_TOKENS, Prompter, window_budget
from workers.engines.llm.model import CausalLM
from workers.engines.llm.prompts import answer_prefix

KIND = "llm"


def _softmax(values: Sequence[float]) -> list[float]:
    top = max(values)
    exp = [math.exp(v - top) for v in values]
    total = sum(exp)
    return [e / total for e in exp]


class LLMClassifier:
    """Resident engine for ``classify`` with a causal LM."""

    def __init__(self, model: CausalLM) -> None:
        self.model = model
        self.model_id = model.spec
        self.model_revision = model.revision
        self.prompter = Prompter(model)

    def _answer(self, text: str) -> list[int]:
        """Tokens of one answer after the prompt, with the end of the answer."""
        end = self.model.eos_ids[:1] if self.model.chat else self.model.encode("\n")
        return self.model.encode(answer_prefix(self.model.chat) + text) + end

    def run(self, texts: Sequence[str], p: ClassifyParams) -> list[Outcome]:
        outcomes, live = start_outcomes(texts, p.engine, KIND, self.model_id)
        if not live:
            return outcomes
        descriptions = p.label_descriptions
        listed = ", ".join(p.labels)
        described = "".join(f"\n- {label}: {descriptions[label]}" for label in p.labels if label in descriptions)
        if p.multi_label:
            template, answers = "classify.multi", [self._answer("yes"), self._answer("no")]
            overheads = [self.prompter.overhead(template, label=label, description=self._desc(descriptions, label))
                         for label in p.labels]
            overhead = max(overheads)
        else:
            template, answers = "classify", [self._answer(label) for label in p.labels]
            overhead = self.prompter.overhead(template, labels=listed, descriptions=described)
        longest = max(len(a) for a in answers)
        if self.model.context - overhead - longest < MIN_WINDOW_TOKENS:
            error = DocumentError("too_many_labels", f"{len(p.labels)} labels (with their descriptions) take "
                                  f"{overhead + longest} of the model's {self.model.context}-token context, leaving "
                                  "too little for the document; submit fewer labels or shorter descriptions")
            return [error if i in live else o for i, o in enumerate(outcomes)]
        budget = window_budget(self.model, overhead, longest)
        usage = self.prompter.usage(template, decoding="exact scoring of every label (constrained)",
                                    multi_label=p.multi_label)
        # every (document, window[, label]) prompt of the batch, scored together
        prompts: list[list[int]] = []
        owners: list[tuple[int, int]] = []  # (document, label index or -1)
        windows: dict[int, int] = {}
        for i in live:
            parts = self.prompter.windows(texts[i], budget)
            windows[i] = len(parts)
            for window in parts:
                if p.multi_label:
                    for k, label in enumerate(p.labels):
                        prompts.append(self.prompter.tokens(template, label=label, document=window,
                                                            description=self._desc(descriptions, label)))
                        owners.append((i, k))
                else:
                    prompts.append(self.prompter.tokens(template, labels=listed, descriptions=described,
                                                        document=window))
                    owners.append((i, -1))
        sums = {i: [0.0] * len(p.labels) for i in live}
        prompt_tokens = dict.fromkeys(live, 0)
        for (i, k), prompt, logps in zip(owners, prompts, self.model.sequence_logprobs(prompts, answers),
                                         strict=True):
            prompt_tokens[i] += len(prompt)
            if k >= 0:  # multi-label: P(yes) of this label against P(no)
                sums[i][k] += _softmax(logps)[0]
            else:
                sums[i] = [a + b for a, b in zip(sums[i], _softmax(logps), strict=True)]
        for i in live:
            scores = [v / windows[i] for v in sums[i]]
            result = classification(p.labels, scores, multi_label=p.multi_label, threshold=p.threshold, engine=KIND)
            doc_usage = self.prompter.usage(template, **usage.settings)
            doc_usage.prompt_tokens = prompt_tokens[i]
            result["llm"] = {**doc_usage.as_json(self.model), "windows": windows[i]}
            outcomes[i] = result
        return outcomes

    @staticmethod
    def _desc(descriptions: Mapping[str, str], label: str) -> str:
        return f" ({descriptions[label]})" if label in descriptions else ""
