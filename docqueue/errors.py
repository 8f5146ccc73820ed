"""One exception tree for docqueue.

The split that matters is *permanent* (the input is bad: retrying cannot help, record it against the
document and move on) versus *retryable* (the infrastructure hiccuped: the job is re-delivered).
"""

from __future__ import annotations

from typing import Any

#: Every ``error_kind`` a producer loader gives a file or row it cannot read, with its meaning.
LOADER_ERROR_KINDS: dict[str, str] = {
    "not_found": "the path (file or folder) does not exist",
    "symlink_loop": "the path is a chain of symbolic links that loops back on itself",
    "unreadable": "the file exists but cannot be opened or read (permissions, I/O error)",
    "unsupported_format": "the file extension is not one docqueue reads",
    "undecodable": "not text in any known encoding (a binary file named .txt?)",
    "corrupt_pdf": "not a readable PDF",
    "encrypted_pdf": "the PDF is password-protected",
    "no_text_layer": "a PDF without text (a scan); OCR it first",
    "corrupt_docx": "not a readable .docx zip (or a legacy .doc renamed)",
    "encrypted_docx": "the .docx is password-protected",
    "corrupt_email": "an .eml whose headers or parts are beyond repair",
    "too_deeply_nested": "forwarded messages nested deeper than the loader follows",
    "invalid_json": "a JSONL line that is not JSON",
    "invalid_row": "an export row that is not one record (a JSON non-object, a CSV row with broken quoting)",
    "missing_text_field": "the export (or row) has no text field named by --text-field",
    "corrupt_csv": "the CSV is malformed beyond one row; the rest of the file is skipped",
    "too_large": "the file (max_file_bytes) or its extracted text (max_document_chars) is over the limit",
    "decompression_bomb": "a .docx whose members inflate beyond max_expanded_bytes or by a suspicious ratio",
    "parse_timeout": "parsing the PDF/DOCX took longer than parse_timeout_s (the parser child is killed)",
    "parse_memory": "parsing the PDF/DOCX needed more memory than parse_memory_mb",
}

#: ``error_kind`` of a document whose submission named a model this worker cannot or may not run.
MODEL_ERROR_KINDS: dict[str, str] = {
    "model_not_allowed": "params.model is neither configured, nor in DOCQUEUE_ALLOWED_MODELS, nor a path inside "
                         "DOCQUEUE_MODEL_DIRS (the same message whatever is on the worker's disk)",
    "model_unavailable": "the model is allowed but not on this worker (not downloaded, wrong path)",
    "too_many_models": "the worker process already holds its most resident models",
    "wrong_model_kind": "the model is of a kind the engine does not take (a causal LM given to the extractive "
                        "summarizer, a seq2seq model to classify); the message names the engine that would",
}


#: ``error_kind`` of a document the causal-LM engine (``llm``) refuses or stops (docs/tasks/llm.md).
LLM_ERROR_KINDS: dict[str, str] = {
    "too_many_labels": "the label set (with its descriptions) does not leave room for the document in the "
                       "model's context",
    "too_many_new_tokens": "params.max_new_tokens is over the worker's DOCQUEUE_LLM_MAX_NEW_TOKENS for the task",
    "generation_timeout": "generation ran past DOCQUEUE_LLM_DOCUMENT_TIMEOUT_S",
    "prompt_too_long": "the instructions and the new tokens asked for leave no room for the document in the context",
    "invalid_schema": "the JSON Schema the answer must follow is one constrained decoding cannot compile (the "
                      "message says why)",
}


#: ``kind`` of a warning in a succeeded result's ``warnings`` list: the result stands, but says what
#: makes it less trustworthy than usual.
RESULT_WARNING_KINDS: dict[str, str] = {
    "language_unsupported": "the document's detected language is not one the model was trained on (the result "
                            "names both); use a model that reads it (docs/tasks/index.md)",
}


#: Error kinds a document of an inline (foreign) message can fail with before any model runs; each
#: is one failed job in its batch, and the rest of the message goes on (README, "Integrating through
#: the queue"). Engines add their own per-document kinds (``empty_document``, ...).
INLINE_ERROR_KINDS: dict[str, str] = {
    "invalid_document": "the document is not {id, text[, metadata]} with a 1-512 character id and string text",
    "invalid_text": "the text holds NUL (\\u0000) or a lone surrogate (\\ud800): no database stores it, and "
                    "docqueue never changes a text silently",
    "duplicate_document": "the id appears earlier in the same message; only the first is processed",
    "conflict": "the batch already holds this id with a different text; the first text and its result are kept",
    "invalid_params": "params has a key the task does not know (or a value of the wrong type or range)",
}


#: Per-document ``error_kind`` an engine or the worker's pipeline gives (besides the model and inline
#: kinds above).
ENGINE_ERROR_KINDS: dict[str, str] = {
    "empty_document": "the document has no text to work on (empty or only whitespace)",
    "engine_mismatch": "the submission asked for an engine (--engine) that its model does not run",
    "engine_error": "the engine raised on this document alone (the message says what); the batch went on",
    "out_of_memory": "the document alone does not fit in accelerator memory, even in a batch of one",
    "language_undetected": "translate --from auto could not tell the document's language; pass --from",
    "unsupported_language_pair": "no translation model is configured for the document's language pair",
    "no_clauses": "review found no sentence of 8 characters or more to review",
    "review_failed": "a review rule tripped on this contract (the message says what)",
}


def worker_error_kinds() -> tuple[str, ...]:
    """Every ``error_kind`` a worker may record on a document, sorted: the label values a metric
    creates at 0 up front, so ``increase()`` sees a kind's first failure (docs/operations/metrics.md)."""
    return tuple(sorted({*MODEL_ERROR_KINDS, *INLINE_ERROR_KINDS, *ENGINE_ERROR_KINDS, *LLM_ERROR_KINDS}))


class DocqueueError(Exception):
    """Root of every error docqueue raises on purpose."""


class ConfigurationError(DocqueueError):
    """A setting is missing or invalid; raised at start-up so nothing half-works."""


class MessageError(DocqueueError):
    """A queue message does not match the documented JSON schema; it cannot be processed."""


class SchemaMissingError(DocqueueError):
    """The database has no (or an outdated) docqueue schema; ``docqueue db upgrade`` fixes it."""


class DocumentError(DocqueueError):
    """A permanent, per-document failure: recorded on that document's job, the batch goes on.

    ``kind`` is a short machine-readable code (``empty_document``, ``unsupported_format``...) so
    scripts can group failures without parsing messages.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ModelUnavailableError(DocqueueError):
    """A configured model cannot be loaded on this machine (not downloaded, wrong path)."""


class PublishError(DocqueueError):
    """A submission's messages could not be published after every retry. ``report`` (the
    producer's ``SubmitReport``) says how far the submit got, so the caller can tell the user what is
    stored and how to resume; ``pending`` is how many messages of the chunk were not sent."""

    def __init__(self, report: Any, pending: int, reason: str) -> None:
        super().__init__(reason)
        self.report, self.pending, self.reason = report, pending, reason
