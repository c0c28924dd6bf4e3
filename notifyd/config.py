"""Settings: environment (NOTIFYD_*), an optional TOML file, and the defaults, which live here once."""

from __future__ import annotations

import base64
import difflib
import os
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from notifyd.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_CONCURRENCY = 32
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_SWEEP_SECONDS = 5.0
DEFAULT_POLL_SECONDS = 1.0
DEFAULT_GRACE_SECONDS = 30.0
DEFAULT_BUSY_TIMEOUT_MS = 30_000
# 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after an immediate first attempt: 8 attempts in all.
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_JITTER = 0.2
DEFAULT_RETENTION_DAYS = 30.0
LOG_FILE_NAME = "notifications.log"
DB_FILE_NAME = "notifyd.db"
SECRET_KEY_FILE_NAME = "secret.key"  # made (mode 0600) on first start unless secret_key is set
DEFAULT_WEBHOOK_TIMEOUT = 15.0
WEBHOOK_SECRET_PREFIX = "whsec_"

# Security: per-token rate limit, failed-auth limit per client IP, request and field limits.
DEFAULT_RATE_LIMIT_BURST = 200
DEFAULT_RATE_LIMIT_PER_SECOND = 50.0
DEFAULT_AUTH_FAILURE_BURST = 30
DEFAULT_AUTH_FAILURE_PER_MINUTE = 1.0
DEFAULT_MAX_BODY_BYTES = 64 * 1024
# How long a process trusts its in-memory copy of the token table: revocation takes effect within it.
DEFAULT_TOKEN_CACHE_SECONDS = 2.0
MAX_MESSAGE_CHARS = 32_768
MAX_SUBJECT_CHARS = 1_000
MAX_RECIPIENTS = 100
MAX_RECIPIENT_CHARS = 2_048
MAX_DATA_BYTES = 16 * 1024
MAX_DATA_DEPTH = 32  # nesting of objects and arrays in a notification's data
# First path segments of notifyd's own routes: a destination is also an ntfy topic (``POST
# /<name>``), so it may not take one of these names (nor ntfy's own ``/<topic>/<verb>`` words).
RESERVED_DESTINATION_NAMES = frozenset(
    {
        "v1", "ui", "docs", "redoc", "openapi.json", "healthz", "metrics", "message", "static",
        "favicon.ico", "robots.txt", "api", "auth", "login", "logout", "app", "assets", "health",
        "version", "json", "sse", "raw", "ws", "publish", "send", "trigger", "file", "stats",
        "account", "config.js", "manifest.webmanifest", "sw.js", "current", "messages",
        "application", "client", "plugin", "stream", "user", "version.json", "hooks",
    }
)  # fmt: skip


def default_home() -> Path:
    """The XDG data directory for notifyd (``$XDG_DATA_HOME/notifyd``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "notifyd"


class RetryPolicySettings(BaseModel):
    """How often and when a failed delivery is tried again.

    ``schedule`` lists the delays between attempts; when it is empty the delays grow
    exponentially: ``base * factor**n`` capped at ``cap``.
    """

    max_attempts: int = Field(default=len(DEFAULT_RETRY_SCHEDULE) + 1, ge=1)
    schedule: list[float] = Field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    base: float = Field(default=5.0, gt=0)
    factor: float = Field(default=2.0, ge=1)
    cap: float = Field(default=36000.0, gt=0)
    jitter: float = Field(default=DEFAULT_JITTER, ge=0, lt=1)


class ChannelSettings(BaseModel):
    """Per-channel overrides."""

    concurrency: int | None = Field(default=None, ge=1)
    retry: RetryPolicySettings | None = None


class SmtpSettings(BaseModel):
    """The mail server the email channel sends through."""

    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["starttls", "tls", "none"] = "none"
    from_address: str = "notifyd@localhost"
    timeout: float = 30.0
    ca_file: Path | None = None


class WebhookSettings(BaseModel):
    """How the webhook channel sends: timeout, signing secret, and the SSRF guard's allow-list.

    ``allow_cidrs`` opens address ranges the guard refuses by default (loopback, private, ...).
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    timeout: float = Field(default=DEFAULT_WEBHOOK_TIMEOUT, gt=0)
    secret: SecretStr | None = None
    allow_cidrs: list[IPvAnyNetwork] = Field(default_factory=list)
    ca_file: Path | None = None  # also trust this CA (endpoints with a private CA)

    @field_validator("secret", mode="after")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if not raw.startswith(WEBHOOK_SECRET_PREFIX):
            raise ValueError(f"a webhook secret starts with {WEBHOOK_SECRET_PREFIX!r}")
        try:
            key = base64.b64decode(raw.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
        except ValueError:
            raise ValueError("a webhook secret is whsec_ followed by base64") from None
        if len(key) < 24:
            raise ValueError("a webhook secret needs at least 24 bytes of key")
        return value


class InboxSettings(BaseModel):
    """The inbox: how long topics keep their messages, and what subscribers may hold."""

    keep_hours: float = Field(default=12.0, gt=0, description="How long a message is kept.")
    max_per_topic: int = Field(default=1000, ge=1, description="At most this many per topic.")
    keepalive_seconds: float = Field(
        default=45.0, gt=0, description="A keepalive event this often on an idle stream."
    )
    buffer: int = Field(
        default=256, ge=1, description="Messages a subscriber may lag behind before it is dropped."
    )
    per_address: int = Field(default=30, ge=1, description="Subscriptions from one address.")
    per_token: int = Field(default=60, ge=1, description="Subscriptions with one token.")
    total: int = Field(default=10_000, ge=1, description="Subscriptions the server holds.")


class DestinationSettings(BaseModel):
    """A named destination (``[destinations.<name>]``): a channel, its recipients, their secrets.

    ``smtp`` and ``webhook`` override the server's ``[smtp]`` and ``[webhook]`` field by field.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    channel: str = Field(min_length=1, max_length=40)
    to: list[str] = Field(min_length=1)
    description: str | None = None
    # Also keep every message in an inbox topic: true for the topic named as the destination.
    inbox: bool | str = False
    smtp: SmtpSettings | None = None
    webhook: WebhookSettings | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Settings(BaseSettings):
    """Everything notifyd can be told. Precedence: CLI flags > environment > TOML file > defaults."""

    # hide_input_in_errors: a mistyped password or secret must not be echoed in the error.
    model_config = SettingsConfigDict(
        env_prefix="NOTIFYD_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    config: Path | None = None
    home: Path = Field(default_factory=default_home)
    database_url: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    server_url: str | None = None
    token: SecretStr | None = None
    # Encrypts ad-hoc recipients that carry secrets (README "What is stored and shown"): one or
    # more Fernet keys, comma-separated, the first encrypting; else the key file in ``home``.
    secret_key: SecretStr | None = None

    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1)
    lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0)
    sweep_seconds: float = Field(default=DEFAULT_SWEEP_SECONDS, gt=0)
    poll_seconds: float = Field(default=DEFAULT_POLL_SECONDS, gt=0)
    grace_seconds: float = Field(default=DEFAULT_GRACE_SECONDS, ge=0)
    retention_days: float = Field(default=DEFAULT_RETENTION_DAYS, ge=0)
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "NORMAL"
    busy_timeout_ms: int = Field(default=DEFAULT_BUSY_TIMEOUT_MS, ge=0)
    retry: RetryPolicySettings = Field(default_factory=RetryPolicySettings)
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    destinations: dict[str, DestinationSettings] = Field(default_factory=dict)
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    access_log: bool = False
    # FastAPI's native OpenTelemetry (spans, metrics and logs to the globally configured
    # providers). Off unless asked for: notifyd has /metrics, and the check costs every request.
    opentelemetry: bool = False

    # Security (README "Security"): 0 disables a rate limit.
    rate_limit_burst: int = Field(default=DEFAULT_RATE_LIMIT_BURST, ge=0)
    rate_limit_per_second: float = Field(default=DEFAULT_RATE_LIMIT_PER_SECOND, ge=0)
    auth_failure_burst: int = Field(default=DEFAULT_AUTH_FAILURE_BURST, ge=0)
    auth_failure_per_minute: float = Field(default=DEFAULT_AUTH_FAILURE_PER_MINUTE, ge=0)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    token_cache_seconds: float = Field(default=DEFAULT_TOKEN_CACHE_SECONDS, ge=0)
    cors_origins: list[str] = Field(default_factory=list)
    insecure_no_auth: bool = False
    # Test-only task functions (a blocking task for crash tests); never on in production.
    enable_test_tasks: bool = False

    @field_validator("destinations", mode="after")
    @classmethod
    def _unreserved(cls, value: dict[str, DestinationSettings]) -> dict[str, DestinationSettings]:
        for name in value:
            if name.lower() in RESERVED_DESTINATION_NAMES:
                raise ValueError(
                    f"destination name {name!r} is reserved: notifyd serves /{name} itself"
                    " (and a destination is also the ntfy topic /<name>); choose another"
                )
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = _config_path(init_settings)
        if config_path is not None:
            if not config_path.is_file():
                raise FileNotFoundError(f"config file {config_path} does not exist")
            toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path)
            check_keys(toml.toml_data, settings_cls, where=str(config_path))
            sources.append(toml)
        return tuple(sources)

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL of the store: the configured one, else SQLite in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / DB_FILE_NAME}"

    @property
    def secret_key_file(self) -> Path:
        """The key that encrypts stored secrets, when ``secret_key`` is not set."""
        return self.home / SECRET_KEY_FILE_NAME

    @property
    def log_file(self) -> Path:
        """Where the ``log`` channel appends its JSON lines."""
        return self.home / LOG_FILE_NAME

    @property
    def base_url(self) -> str:
        """The URL clients use to reach the server."""
        if self.server_url:
            return self.server_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds: ``SmtpSettings | None`` and ``dict[str, ChannelSettings]`` alike."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def check_keys(
    data: dict[str, Any], model: type[BaseModel], *, where: str, section: str = ""
) -> None:
    """Refuse a key of the config file that no setting has: a typo (``[smtp] hots``) must not
    silently leave the default in place. The environment (NOTIFYD_*) is not checked."""
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            close = difflib.get_close_matches(key, list(fields), n=1)
            if isinstance(value, dict):  # a mistyped table: [webhok]
                table = f"{section}.{key}" if section else key
                hint = f" (did you mean [{close[0]}]?)" if close else ""
                raise ConfigError(f"unknown section [{table}] in {where}{hint}")
            place = f"[{section}]" if section else "the top level"
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key {key!r} in {place} of {where}{hint}")
        if not isinstance(value, dict):
            continue
        name = f"{section}.{key}" if section else key
        for inner in _models_in(field.annotation):
            is_mapping = get_origin(field.annotation) is dict or any(
                get_origin(arg) is dict for arg in get_args(field.annotation)
            )
            if is_mapping:  # [channels.<name>], [destinations.<name>]
                for entry, table in value.items():
                    if isinstance(table, dict):
                        check_keys(table, inner, where=where, section=f"{name}.{entry}")
            else:
                check_keys(value, inner, where=where, section=name)


def _config_path(init_settings: PydanticBaseSettingsSource) -> Path | None:
    init_values: dict[str, Any] = init_settings()
    raw = init_values.get("config") or os.environ.get("NOTIFYD_CONFIG")
    return Path(raw).expanduser() if raw else None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings; ``overrides`` (from CLI flags) win when not None."""
    values = {key: value for key, value in overrides.items() if value is not None}
    if config is not None:
        values["config"] = config
    return Settings(**values)
