"""Configuration from ``MERCHANT_BACKEND_*`` environment variables (see CONTRACT.md)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MERCHANT_BACKEND_", extra="ignore")

    database_url: str = "sqlite:///./merchant-backend.db"
    # One or more base64url keys, comma separated; the first encrypts, all decrypt.
    master_key: SecretStr | None = None
    master_key_file: str = "./merchant-backend.key"
    admin_token: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8000"
    stripe_api_base: str | None = None
    webhook_tolerance: int = Field(default=300, ge=1)
    webhook_max_body: int = Field(default=1024 * 1024, ge=1024)
    # How long a webhook waits for its batch to commit before answering 503.
    ingest_commit_timeout: float = Field(default=10.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    worker_batch_size: int = Field(default=500, ge=1)
    worker_lease_seconds: float = Field(default=60.0, gt=0)
    worker_poll_interval: float = Field(default=0.2, gt=0)
    # 15 tries, backoff 2 s doubling up to 1 h (with jitter): 2–4 h before an event is dead,
    # so a bug fixed within the working day needs no manual replay.
    worker_max_attempts: int = Field(default=15, ge=1)
    worker_backoff_base: float = Field(default=2.0, gt=0)
    worker_backoff_max: float = Field(default=3600.0, gt=0)

    stripe_timeout: float = Field(default=20.0, gt=0)
    stripe_max_network_retries: int = Field(default=2, ge=0)
    # Seconds between automatic reconcile runs inside `serve`; 0 turns it off.
    reconcile_interval: float = Field(default=0.0, ge=0)

    log_level: str = "INFO"
    log_json: bool = True
