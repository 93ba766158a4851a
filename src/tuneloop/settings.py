"""Settings: explicit argument, then ``TUNELOOP_*`` environment variable, then default.

Every setting tuneloop reads is declared here and nowhere else.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tuneloop.errors import ConfigError

MiB = 1024 * 1024


class ModelPrice(BaseModel):
    """Price of one model in USD per 1,000 tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_1k: Annotated[float, Field(ge=0)]
    output_per_1k: Annotated[float, Field(ge=0)]


# List prices at the time of writing; teams override them with TUNELOOP_PRICES_FILE.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o": ModelPrice(input_per_1k=0.0025, output_per_1k=0.01),
    "gpt-4o-mini": ModelPrice(input_per_1k=0.00015, output_per_1k=0.0006),
    "gpt-4.1": ModelPrice(input_per_1k=0.002, output_per_1k=0.008),
    "gpt-4.1-mini": ModelPrice(input_per_1k=0.0004, output_per_1k=0.0016),
    "gpt-4.1-nano": ModelPrice(input_per_1k=0.0001, output_per_1k=0.0004),
    "o3": ModelPrice(input_per_1k=0.002, output_per_1k=0.008),
    "o4-mini": ModelPrice(input_per_1k=0.0011, output_per_1k=0.0044),
    "claude-opus-4": ModelPrice(input_per_1k=0.015, output_per_1k=0.075),
    "claude-sonnet-4": ModelPrice(input_per_1k=0.003, output_per_1k=0.015),
    "claude-3-5-haiku": ModelPrice(input_per_1k=0.0008, output_per_1k=0.004),
    "claude-haiku-4": ModelPrice(input_per_1k=0.001, output_per_1k=0.005),
    "gemini-2.5-pro": ModelPrice(input_per_1k=0.00125, output_per_1k=0.01),
    "gemini-2.5-flash": ModelPrice(input_per_1k=0.0003, output_per_1k=0.0025),
}


class Settings(BaseSettings):
    """Server, storage and client settings (environment prefix ``TUNELOOP_``)."""

    model_config = SettingsConfigDict(env_prefix="TUNELOOP_", extra="forbid")

    home: Path = Path(".tuneloop")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 4318
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * MiB
    max_attribute_chars: Annotated[int, Field(ge=64)] = 16_384
    max_attributes_per_span: Annotated[int, Field(ge=16)] = 512
    write_queue_max_requests: Annotated[int, Field(ge=1)] = 256
    # Processes that decode and normalize OTLP requests; -1: one per CPU, 0: none
    # (decode on a thread of the server process).
    ingest_workers: Annotated[int, Field(ge=-1, le=64)] = -1
    prices_file: Path | None = None
    # Client side: where the CLI and SDK find the server.
    url: str = "http://127.0.0.1:4318"
    api_key: str | None = None
    # Where the SDK keeps the last agent state it fetched; default: HOME/state.
    state_dir: Path | None = None
    # Signs dashboard session cookies; default: a random key kept in HOME/secret_key.
    # Server replicas behind one load balancer need the same key.
    secret_key: SecretStr | None = None
    # Recommendations: the server refreshes every agent's every this many seconds (0: off),
    # over this window of runs. The optimizer (openai, anthropic or package.module:factory)
    # and its model rewrite prompts of failure clusters; none: prompt rewrites are skipped.
    recommend_interval_s: Annotated[float, Field(ge=0)] = 3600.0
    recommend_window: str = "24h"
    recommend_optimizer: str | None = None
    recommend_optimizer_model: str | None = None
    recommend_rubric_file: Path | None = None
    # Rollouts and alerts: the controller evaluates every active rollout and alert rule
    # every this many seconds (0: off); webhooks get this long per attempt, this many
    # attempts, the first retry after this many seconds (doubling, capped at 10 minutes).
    controller_interval_s: Annotated[float, Field(ge=0)] = 15.0
    webhook_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    webhook_max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    webhook_backoff_s: Annotated[float, Field(gt=0, le=3600)] = 5.0

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                f"unsupported database URL {value.split(':', 1)[0]!r}: use sqlite:///PATH "
                "or postgresql+psycopg://USER:PASSWORD@HOST/DB"
            )
        return value

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'tuneloop.db'}"

    def resolved_state_dir(self) -> Path:
        """Where the SDK keeps agent state documents: ``state_dir`` or ``home/state``."""
        return self.state_dir if self.state_dir is not None else self.home / "state"

    def resolved_secret_key(self) -> bytes:
        """The key that signs dashboard sessions: ``secret_key``, else one kept in ``home``.

        The file ``home/secret_key`` is created (mode 0600) on first use and read after;
        servers sharing ``home`` share it.

        Raises:
            ConfigError: the file cannot be created or read, or holds too short a key.
        """
        if self.secret_key is not None:
            given = self.secret_key.get_secret_value()
            if len(given) < 32:
                raise ConfigError(
                    f"TUNELOOP_SECRET_KEY is {len(given)} characters long; use at least 32 "
                    "random ones, e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"
                )
            return given.encode()
        path = self.home / "secret_key"
        try:
            if not path.exists():
                self.home.mkdir(parents=True, exist_ok=True)
                draft = self.home / f".secret_key.{secrets.token_hex(8)}"
                fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="ascii") as out:
                    out.write(secrets.token_urlsafe(48) + "\n")
                try:
                    os.link(draft, path)  # atomic: a concurrent first start keeps one key
                except FileExistsError:
                    pass
                finally:
                    draft.unlink()
            key = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot keep the session key in {str(path)!r}: {exc}; set TUNELOOP_SECRET_KEY "
                "or make TUNELOOP_HOME writable"
            ) from exc
        if len(key) < 32:
            raise ConfigError(
                f"the session key in {str(path)!r} is shorter than 32 characters; delete the "
                "file to have a new one made, or set TUNELOOP_SECRET_KEY"
            )
        return key.encode()

    def resolved_ingest_workers(self) -> int:
        """The number of ingest worker processes to start."""
        if self.ingest_workers >= 0:
            return self.ingest_workers
        return max(1, min(os.cpu_count() or 1, 8))

    def prices(self) -> dict[str, ModelPrice]:
        """The price table: defaults, overridden model by model by ``prices_file``."""
        table = dict(DEFAULT_PRICES)
        if self.prices_file is None:
            return table
        try:
            text = self.prices_file.read_text(encoding="utf-8")
            raw = json.loads(text) if self.prices_file.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read prices file {str(self.prices_file)!r}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(
                f"prices file {str(self.prices_file)!r} must map model names to "
                "{input_per_1k, output_per_1k}"
            )
        for model, price in raw.items():
            try:
                table[str(model)] = ModelPrice.model_validate(price)
            except ValidationError as exc:
                raise ConfigError(
                    f"invalid price for model {model!r} in {str(self.prices_file)!r}: {exc}"
                ) from exc
        return table


def load_settings(**overrides: object) -> Settings:
    """Settings from explicit overrides, then the environment, then defaults."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"invalid tuneloop settings: {exc}") from exc
