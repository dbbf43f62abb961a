"""One typed settings object, read from the environment (and an optional `.env`) once at start."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import ConfigurationError

# The value shipped in .env.example; production refuses to start with it.
EXAMPLE_JWT_SECRET = "change-me-to-a-long-random-string-at-least-32-chars"  # noqa: S105
MIN_PRODUCTION_SECRET_LENGTH = 32

# Native output sizes of the embedding models DocuChat knows; others need EMBEDDING_DIMENSIONS.
KNOWN_EMBEDDING_DIMENSIONS = {
    ("local", "multilingual-e5-small"): 384,
    ("openai", "text-embedding-3-small"): 1536,
    ("openai", "text-embedding-3-large"): 3072,
    ("openai", "text-embedding-ada-002"): 1536,
}
DEFAULT_EMBEDDING_MODEL = {"local": "multilingual-e5-small", "openai": "text-embedding-3-small"}

# The model name of the embedded answerer, which quotes sources and generates nothing.
EXTRACTIVE_MODEL = "extractive"
# The largest WebSocket message read: as large as a JSON body over HTTP.
WS_MAX_FRAME_BYTES = 1 << 20

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    app_env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".docuchat")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # json: one object per line, with request, tenant and job ids; text: for reading by eye.
    log_format: Literal["json", "text"] = "json"

    # The API and workers sign in as a role that owns nothing and cannot become an owner or a
    # superuser, so row-level security binds them; migrations and operators' commands sign in
    # as the schema's owner. `docuchat migrate` makes the first from the second.
    database_url: str | None = None
    database_owner_url: str | None = None
    redis_url: str | None = None

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    allowed_models: CommaList = Field(default_factory=list)
    openai_timeout_seconds: float = Field(default=60.0, gt=0)
    openai_max_retries: int = Field(default=3, ge=0, le=10)
    # auto: `openai` when OPENAI_API_KEY or OPENAI_BASE_URL is set, else `extractive` (no model).
    chat_provider: Literal["auto", "openai", "extractive"] = "auto"
    max_answer_tokens: int = Field(default=1024, ge=16, le=32000)
    # The model's context window in its tokens; unset: the provider's models are large enough.
    model_context_tokens: int | None = Field(default=None, ge=512)

    embedding_provider: Literal["local", "openai"] = "local"
    embedding_model: str | None = None
    embedding_dimensions: int | None = Field(default=None, gt=0, le=16000)

    frontend_origin: CommaList = Field(default_factory=lambda: ["http://localhost:8000"])
    jwt_secret: SecretStr
    access_token_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    # Questions, searches, uploads, sign-ins and changes; reads (GET) have their own budget.
    rate_limit_per_minute: int = Field(default=50, gt=0)
    read_rate_limit_per_minute: int = Field(default=600, gt=0)
    # The window both budgets are counted over: a minute, shorter only for tests.
    rate_limit_window_seconds: int = Field(default=60, ge=1, le=3600)
    trusted_proxies: CommaList = Field(default_factory=list)
    login_code_ttl_seconds: int = Field(default=600, ge=1, le=86400)
    login_code_max_attempts: int = Field(default=5, ge=1, le=20)
    login_code_interval_seconds: int = Field(default=60, ge=1)
    login_codes_per_hour: int = Field(default=5, ge=1)
    tenant_header: str = Field(default="X-Tenant-ID", min_length=1)

    # 256 cl100k tokens stay inside e5's 512-token window for English and Persian alike.
    chunk_token_size: int = Field(default=256, ge=32, le=8000)
    chunk_overlap: int = Field(default=32, ge=0)
    max_context_tokens: int = Field(default=8000, ge=512)
    top_k: int = Field(default=6, ge=1, le=50)
    max_upload_mb: int = Field(default=25, ge=1, le=1024)
    max_pages: int = Field(default=500, ge=1, le=20000)
    # Uploads are refused (507) while DATA_DIR's volume has less free space than this beyond
    # the largest upload; /healthz and /metrics report it. 0 turns the check off.
    min_free_disk_mb: int = Field(default=512, ge=0)
    # Each PDF is read in a child process held to these (pipeline/pdf_isolation.py).
    pdf_memory_limit_mb: int = Field(default=1024, ge=256, le=65536)
    pdf_cpu_seconds: int = Field(default=300, ge=5, le=3600)
    embedding_batch_size: int = Field(default=32, ge=1, le=2048)
    # A document is ingested in batches of this many pages, each a message of its own, so
    # several workers share a large one and no slot is held long.
    ingest_batch_pages: int = Field(default=32, ge=1, le=10000)
    # A page that takes more CPU than this to read is skipped, with the reason.
    pdf_page_cpu_seconds: int = Field(default=5, ge=1, le=600)
    # Scanned pages: Tesseract's languages, the resolution pages are rendered at, its time.
    ocr_languages: str = Field(default="fas+eng", pattern=r"^[a-z_]{3,}(\+[a-z_]{3,})*$")
    ocr_dpi: int = Field(default=300, ge=72, le=600)
    ocr_page_seconds: int = Field(default=60, ge=1, le=600)

    # The worker fleet: answers and ingestion run in processes of their own, so a question
    # never waits for a thread ingestion holds. `docuchat dev` starts these; the Procfile's
    # worker-chat and worker-ingest read the same variables.
    chat_worker_processes: int = Field(default=1, ge=1, le=64)
    chat_worker_threads: int = Field(default=8, ge=1, le=256)
    ingest_worker_processes: int = Field(default=1, ge=1, le=64)
    ingest_worker_threads: int = Field(default=2, ge=1, le=256)
    # Batches one tenant may have running at once, across the fleet. Unset: half the ingest
    # slots (processes x threads) of one worker machine, at least 1.
    tenant_ingest_concurrency: int | None = Field(default=None, ge=1, le=10000)

    # A job's event stream stays readable this long after its last event.
    stream_retention_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    stream_token_ttl_seconds: int = Field(default=900, ge=30, le=24 * 3600)
    sse_keepalive_seconds: float = Field(default=15.0, gt=0, le=300)
    # Open streams (answer SSE, job events, WebSockets together): per user and per tenant
    # across every API process (429 past them), per process (503 past it).
    max_streams_per_user: int = Field(default=50, ge=1, le=100000)
    max_streams_per_tenant: int = Field(default=500, ge=1, le=1000000)
    max_streams_per_process: int = Field(default=2000, ge=1, le=50000)
    # Uploads being received at once, the same way.
    max_uploads_per_user: int = Field(default=8, ge=1, le=10000)
    max_uploads_per_tenant: int = Field(default=32, ge=1, le=100000)
    max_uploads_per_process: int = Field(default=64, ge=1, le=100000)
    # How slowly any request's body may arrive: 408 after this long without a byte, or when
    # slower than this over the window.
    body_idle_seconds: float = Field(default=10.0, gt=0, le=600)
    body_min_bytes_per_second: int = Field(default=1024, ge=0)
    body_rate_window_seconds: float = Field(default=30.0, gt=0, le=3600)
    # The largest WebSocket message read, as large as a JSON body over HTTP: past it the
    # socket is closed with 1009 (uvicorn's --ws-max-size, which the API's commands set).
    ws_max_frame_bytes: int = Field(default=WS_MAX_FRAME_BYTES, ge=1024, le=16 << 20)

    worker_heartbeat_timeout_seconds: float = Field(default=60.0, ge=1, le=3600)
    # No request waits longer than this for its answer to begin (the body's arrival not
    # counted): past it, 503 with Retry-After. API statements are cancelled by Postgres at it.
    request_deadline_seconds: float = Field(default=10.0, ge=1, le=600)
    # Connecting to Postgres gives up after this long (API and workers).
    database_connect_timeout_seconds: int = Field(default=5, ge=1, le=300)
    # Every Redis call (API, workers, broker) gives up after this long without an answer, and
    # is tried once more: a frozen Redis costs a request a few seconds, not a minute.
    redis_timeout_seconds: float = Field(default=2.0, ge=1, le=60)
    # How long a worker holds an answer's unsent text for Redis to come back, then goes on
    # where it was; past it the attempt fails and the answer starts again on a retry.
    redis_outage_wait_seconds: float = Field(default=120.0, ge=0, le=3600)
    # Every worker's reaper looks this often for unfinished jobs whose queue message is gone
    # (Redis lost it) and sends them again; a job younger than the grace is left alone.
    reaper_interval_seconds: float = Field(default=10.0, ge=0.5, le=3600)
    reaper_grace_seconds: float = Field(default=20.0, ge=1, le=3600)

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_from: str = "DocuChat <no-reply@localhost>"

    _split = field_validator("allowed_models", "frontend_origin", "trusted_proxies", mode="before")(
        _split_commas
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @field_validator(
        "database_url", "database_owner_url", "redis_url", "openai_api_key", "openai_base_url",
        "embedding_model", "embedding_dimensions", "smtp_host", "smtp_user", "smtp_password",
        "tenant_ingest_concurrency", "model_context_tokens",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.chunk_overlap >= self.chunk_token_size:
            raise ValueError(
                f"CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than "
                f"CHUNK_TOKEN_SIZE ({self.chunk_token_size})"
            )
        if self.app_env == "production" and not self.smtp_host:
            raise ValueError("SMTP_HOST must be set in production: sign-in codes go by e-mail")
        if self.app_env == "production":
            secret = self.jwt_secret.get_secret_value()
            if secret == EXAMPLE_JWT_SECRET:
                raise ValueError("JWT_SECRET is the example value from .env.example")
            if len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
                raise ValueError(
                    f"JWT_SECRET must be at least {MIN_PRODUCTION_SECRET_LENGTH} characters"
                )
        if self.embedding_provider == "openai" and not (
            self.openai_api_key or self.openai_base_url
        ):
            raise ValueError(
                "EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a "
                "local OpenAI-compatible server)"
            )
        if self.chat_provider == "openai" and not (self.openai_api_key or self.openai_base_url):
            raise ValueError(
                "CHAT_PROVIDER=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local "
                "OpenAI-compatible server)"
            )
        self.embedding_dimension  # noqa: B018 - raises when the model's size is unknown
        return self

    @property
    def embedding_model_name(self) -> str:
        return self.embedding_model or DEFAULT_EMBEDDING_MODEL[self.embedding_provider]

    @property
    def embedding_dimension(self) -> int:
        """Width of the `chunks.embedding` column this configuration needs."""
        if self.embedding_dimensions:
            return self.embedding_dimensions
        known = KNOWN_EMBEDDING_DIMENSIONS.get((self.embedding_provider, self.embedding_model_name))
        if known is None:
            raise ValueError(
                f"EMBEDDING_DIMENSIONS must be set for the unknown embedding model "
                f"{self.embedding_model_name!r}"
            )
        return known

    @property
    def chat_provider_name(self) -> Literal["openai", "extractive"]:
        if self.chat_provider == "auto":
            return "openai" if self.openai_api_key or self.openai_base_url else "extractive"
        return self.chat_provider

    @property
    def default_chat_model(self) -> str:
        return EXTRACTIVE_MODEL if self.chat_provider_name == "extractive" else self.openai_model

    @property
    def chat_models(self) -> list[str]:
        """Models a chat request may name: OPENAI_MODEL and ALLOWED_MODELS; with no language
        model configured, only `extractive`."""
        if self.chat_provider_name == "extractive":
            return [EXTRACTIVE_MODEL]
        return list(dict.fromkeys([self.openai_model, *self.allowed_models]))

    @property
    def tenant_ingest_share(self) -> int:
        """TENANT_INGEST_CONCURRENCY, or half the ingest slots of one worker machine."""
        slots = self.ingest_worker_processes * self.ingest_worker_threads
        return self.tenant_ingest_concurrency or max(1, slots // 2)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: bool = True,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Read settings from `environ` (default: the process environment and `.env`), with
    `overrides` (field names) taking precedence, or raise ConfigurationError.

    The error message names every bad variable, one per line, ready to print to an operator.
    """
    try:
        if environ is None:
            given: dict[str, Any] = dict(overrides or {})
            return Settings(_env_file=".env" if env_file else None, **given)  # type: ignore[call-arg]
        # Only the given mapping counts: validating it directly skips the process environment.
        mapped = {k.lower(): v for k, v in environ.items()} | dict(overrides or {})
        return Settings.model_validate(mapped)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = ["Invalid configuration:"]
    for error in exc.errors():
        names = [str(part).upper() for part in error["loc"] if isinstance(part, str)]
        variable = ", ".join(names) if names else "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but not set"
        shown = "" if error["type"] == "missing" else f" (got {_shown_input(error)})"
        lines.append(f"  {variable}: {message}{shown}" if names else f"  {message}")
    return "\n".join(lines)


def _shown_input(error: object) -> str:
    value = error.get("input") if isinstance(error, dict) else None
    if isinstance(value, dict):
        return "…"
    if isinstance(value, SecretStr):
        return "<hidden>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
