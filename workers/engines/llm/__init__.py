"""The causal-LM engine (``llm``): chat and base models for classify, summarize, translate, review and
generate.

Pure like every engine: a resident model, texts and params in, one outcome per text out.
"""

from workers.engines.llm.classify import LLMClassifier
from workers.engines.llm.common import Limits
from workers.engines.llm.generate import LLMGenerator
from workers.engines.llm.model import CausalLM
from workers.engines.llm.review import LLMReviewer
from workers.engines.llm.writing import LLMSummarizer, LLMTranslator

__all__ = ["CausalLM", "LLMClassifier", "LLMGenerator", "LLMReviewer", "LLMSummarizer", "LLMTranslator", "Limits"]
