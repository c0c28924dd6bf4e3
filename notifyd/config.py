"""Settings: environment (NOTIFYD_*), an optional TOML file, and the defaults, which live here once.

One idea, kept whole though over 300 lines: every setting with its default and its description
(the documentation's configuration page is generated from them), and how the file is read.
"""

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

    max_attempts: int = Field(
        default=len(DEFAULT_RETRY_SCHEDULE) + 1,
        ge=1,
        description="Attempts in all, the first included.",
    )
    schedule: list[float] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE),
        description="Seconds to wait before each attempt after the first; empty: exponential.",
    )
    base: float = Field(default=5.0, gt=0, description="Exponential: the first delay, in seconds.")
    factor: float = Field(
        default=2.0, ge=1, description="Exponential: each delay is this times the last."
    )
    cap: float = Field(
        default=36000.0, gt=0, description="Exponential: no delay is longer (seconds)."
    )
    jitter: float = Field(
        default=DEFAULT_JITTER,
        ge=0,
        lt=1,
        description="Each delay varies by up to this fraction, either way.",
    )


class ChannelSettings(BaseModel):
    """Per-channel overrides."""

    concurrency: int | None = Field(
        default=None, ge=1, description="Runs of this channel executing at once per process."
    )
    retry: RetryPolicySettings | None = Field(
        default=None, description="This channel's retry policy, in place of `[retry]`."
    )


class SmtpSettings(BaseModel):
    """The mail server the email channel sends through."""

    host: str = Field(default="127.0.0.1", description="The SMTP server's name or address.")
    port: int = Field(default=25, description="Its port: 587 for STARTTLS, 465 for implicit TLS.")
    username: str | None = Field(
        default=None, description="Log in with this name (and `password`)."
    )
    password: SecretStr | None = Field(default=None, description="The login's password.")
    security: Literal["starttls", "tls", "none"] = Field(
        default="none", description="`starttls`, `tls` (implicit TLS) or `none`."
    )
    from_address: str = Field(
        default="notifyd@localhost",
        description="The `From:` of every message, e.g. `Alerts <alerts@example.org>`.",
    )
    timeout: float = Field(default=30.0, description="Seconds for connecting and for each reply.")
    ca_file: Path | None = Field(
        default=None, description="Also trust this CA (a private mail server)."
    )


class WebhookSettings(BaseModel):
    """How the webhook channel sends: timeout, signing secret, and the SSRF guard's allow-list.

    ``allow_cidrs`` opens address ranges the guard refuses by default (loopback, private, ...).
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    timeout: float = Field(
        default=DEFAULT_WEBHOOK_TIMEOUT,
        gt=0,
        description="Seconds for one request, from when it is sent (also caps Apprise's socket timeouts).",
    )
    secret: SecretStr | None = Field(
        default=None,
        description="Standard Webhooks signing secret (`whsec_` and base64 of 24+ bytes); unset: unsigned.",
    )
    allow_cidrs: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Address ranges the SSRF guard would otherwise refuse (loopback, private, ...).",
    )
    ca_file: Path | None = Field(
        default=None, description="Also trust this CA for https endpoints (a private CA)."
    )

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

    channel: str = Field(
        min_length=1,
        max_length=40,
        description="The channel: `log`, `email`, `webhook`, `apprise`.",
    )
    to: list[str] = Field(
        min_length=1, description="One recipient or a list of them, as the channel takes them."
    )
    description: str | None = Field(
        default=None, description="Shown in `notifyd destinations list`."
    )
    inbox: bool | str = Field(
        default=False,
        description="Also keep every message in an inbox topic: `true` for the topic named as "
        "the destination, or a topic's name.",
    )
    smtp: SmtpSettings | None = Field(
        default=None, description="Overrides `[smtp]` field by field for this destination."
    )
    webhook: WebhookSettings | None = Field(
        default=None, description="Overrides `[webhook]` field by field for this destination."
    )

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

    config: Path | None = Field(
        default=None, description="The TOML file to read (`--config FILE` or `NOTIFYD_CONFIG`)."
    )
    home: Path = Field(
        default_factory=default_home,
        description="The data directory: the SQLite file, `notifications.log`, `secret.key`. "
        "Default `$XDG_DATA_HOME/notifyd` (`~/.local/share/notifyd`).",
    )
    database_url: str | None = Field(
        default=None,
        description="The store's SQLAlchemy URL, e.g. `postgresql+psycopg://user@db/notifyd`; "
        "unset: SQLite `notifyd.db` in `home`.",
    )
    host: str = Field(default=DEFAULT_HOST, description="Where `notifyd serve` listens.")
    port: int = Field(default=DEFAULT_PORT, description="The port `notifyd serve` listens on.")
    server_url: str | None = Field(
        default=None, description="Where `notifyd send` talks to; unset: from `host` and `port`."
    )
    token: SecretStr | None = Field(
        default=None, description="The API token `notifyd send` presents."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Encrypts stored ad-hoc recipients that carry secrets: one or more Fernet keys, "
        "comma-separated, the first sealing (`notifyd secrets new-key` makes one); "
        "unset: the key file `secret.key` in `home`, made (mode 0600) on first start.",
    )

    concurrency: int = Field(
        default=DEFAULT_CONCURRENCY, ge=1, description="Runs executing at once per process."
    )
    lease_seconds: float = Field(
        default=DEFAULT_LEASE_SECONDS,
        gt=0,
        description="A running run's lease, renewed every third of it; once expired, a sweep rescues the run.",
    )
    sweep_seconds: float = Field(
        default=DEFAULT_SWEEP_SECONDS, gt=0, description="How often expired leases are looked for."
    )
    poll_seconds: float = Field(
        default=DEFAULT_POLL_SECONDS,
        gt=0,
        description="How often due runs are looked for (new runs wake the dispatcher at once); "
        "bounds how late a scheduled run starts.",
    )
    grace_seconds: float = Field(
        default=DEFAULT_GRACE_SECONDS,
        ge=0,
        description="On SIGTERM, how long running attempts may take to finish.",
    )
    retention_days: float = Field(
        default=DEFAULT_RETENTION_DAYS,
        ge=0,
        description="Finished runs older than this are pruned hourly, with their attempts and "
        "notifications; 0: never.",
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="NORMAL",
        description="SQLite's durability against speed: `FULL` also survives a power loss.",
    )
    busy_timeout_ms: int = Field(
        default=DEFAULT_BUSY_TIMEOUT_MS,
        ge=0,
        description="How long a SQLite connection waits for another process's write lock.",
    )
    retry: RetryPolicySettings = Field(
        default_factory=RetryPolicySettings,
        description="The retry policy of every channel (`[retry]`).",
    )
    channels: dict[str, ChannelSettings] = Field(
        default_factory=dict,
        description="Per-channel `concurrency` and `retry` (`[channels.<name>]`).",
    )
    smtp: SmtpSettings = Field(
        default_factory=SmtpSettings, description="The email channel's mail server (`[smtp]`)."
    )
    webhook: WebhookSettings = Field(
        default_factory=WebhookSettings,
        description="The webhook channel: timeout, signing secret, SSRF allow-list (`[webhook]`).",
    )
    destinations: dict[str, DestinationSettings] = Field(
        default_factory=dict, description="Named destinations (`[destinations.<name>]`)."
    )
    inbox: InboxSettings = Field(
        default_factory=InboxSettings,
        description="The inbox channel's topics and their subscribers (`[inbox]`).",
    )
    access_log: bool = Field(
        default=False,
        description="Log every request (token-like query parameters masked).",
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry (to the globally configured providers, e.g. by "
        "`opentelemetry-instrument`), and one trace per notification: each run keeps the trace "
        "it was accepted under, each attempt is a span in it, webhooks carry `traceparent` "
        "(see Monitoring). Off unless asked for: notifyd has `/metrics`, and on, every request "
        "goes through FastAPI's own layers, so the accept path is slower.",
    )

    # Security: 0 disables a rate limit.
    rate_limit_burst: int = Field(
        default=DEFAULT_RATE_LIMIT_BURST, ge=0, description="A token's bucket size; 0: no limit."
    )
    rate_limit_per_second: float = Field(
        default=DEFAULT_RATE_LIMIT_PER_SECOND,
        ge=0,
        description="Requests per second a token's bucket refills by; over it `429`; 0: no limit.",
    )
    auth_failure_burst: int = Field(
        default=DEFAULT_AUTH_FAILURE_BURST,
        ge=0,
        description="Failed bearer tokens a client address may present before `429`; 0: no limit.",
    )
    auth_failure_per_minute: float = Field(
        default=DEFAULT_AUTH_FAILURE_PER_MINUTE,
        ge=0,
        description="How fast that budget refills, per minute.",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES, ge=1, description="A larger request body is `413`."
    )
    token_cache_seconds: float = Field(
        default=DEFAULT_TOKEN_CACHE_SECONDS,
        ge=0,
        description="How long a process trusts its copy of the token table: a new or revoked "
        "token takes effect within it.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API (CORS); empty: none.",
    )
    insecure_no_auth: bool = Field(
        default=False,
        description="Serve an open API on a non-loopback address with no token (`--insecure-no-auth`).",
    )
    enable_test_tasks: bool = Field(
        default=False,
        description="Test-only channels (a blocking one for crash tests); never on in production.",
    )

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
