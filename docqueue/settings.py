"""One typed settings object, read from the environment (``DOCQUEUE_*`` plus standard names).

Nothing is built at import time: call :func:`get_settings` where settings are needed, so tests and
CLI options can change the environment first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from docqueue.settings_models import (
    DEFAULT_CLASSIFY_MAX_EXAMPLES,
    DEFAULT_CLASSIFY_MAX_LABELS,
    DEFAULT_TRANSLATE_MODELS,
    TRANSLATE_BY_PAIR,
    ModelSettings,
)
from docqueue.settings_service import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, ServiceSettings

#: Redis re-delivers a message unacknowledged this long (see :attr:`Settings.visibility_timeout`).
DEFAULT_VISIBILITY_TIMEOUT_S = 300


class Settings(ModelSettings, ServiceSettings, BaseSettings):
    """Every knob docqueue has. Invalid values fail at start-up, not in the middle of a batch.

    One object, declared in three parts by concern so no module outgrows a reader: where the services
    and devices are (:class:`~docqueue.settings_service.ServiceSettings`), which models run
    (:class:`~docqueue.settings_models.ModelSettings`), and here batching, limits, timeouts, schedules,
    events and observability. The parts come first in that order (pydantic keeps the bases' fields
    first), which is the order of the configuration reference."""

    # A .env file in the working directory is read too (below the real environment, which wins);
    # get_settings reads the file DOCQUEUE_ENV_FILE (``docqueue --env-file``) names instead.
    model_config = SettingsConfigDict(env_prefix="DOCQUEUE_", extra="ignore", populate_by_name=True,
                                      env_file=".env", env_file_encoding="utf-8")

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
        description="Padded tokens per forward pass inside a worker; 0: auto (per CPU thread 256 in fp32 and 512 "
        "in bf16, measured best on CPU where big padded batches thrash the cache; batch_max_tokens on a GPU).")
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


__all__ = ["DEFAULT_CLASSIFY_MAX_EXAMPLES", "DEFAULT_CLASSIFY_MAX_LABELS", "DEFAULT_DATABASE_URL", "DEFAULT_REDIS_URL",
           "DEFAULT_TRANSLATE_MODELS", "ENV_FILE_ENV", "TRANSLATE_BY_PAIR", "Settings", "env_file", "get_settings",
           "model_store_dir"]
