"""All configuration in one place: environment variables, a `.env` file, then defaults."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timedelta
from email.utils import parseaddr
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import (
    EmailStr,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where the code, templates/ and locales/ are: the checkout, or the installed package.
PROJECT_DIR = Path(__file__).resolve().parent
# Where `.env`, relative SQLite paths and var/ are: a checkout's own directory, wherever a
# process starts in it; an installed package's working directory (a service's
# WorkingDirectory), never the read-only site-packages.
HOME_DIR = PROJECT_DIR if (PROJECT_DIR / "pyproject.toml").is_file() else Path.cwd()
VAR_DIR = HOME_DIR / "var"
# A payload encryption key's id: it is written in the metadata of every payload it encrypts.
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
KEY_BYTES = 32


class Environment(StrEnum):
    LOCAL = "local"
    PRODUCTION = "production"


# What production takes from its operator only: left to its default, each process makes
# its own key (var/), secret (var/) or SQLite file (its working directory), and two hosts,
# or a command line run from another folder, no longer agree.
PRODUCTION_NEEDS = (
    "payload_encryption_keys",
    "web_secret_key",
    "sales_database_url",
    "commerce_database_url",
)
# The longest a duration setting may be: longer than anything here is meant to wait, and
# far from where a date plus it leaves the calendar (year 9999: OverflowError in every
# workflow task and link that adds it).
LONGEST_DURATION = timedelta(days=36525)
DURATIONS = (
    "activation_ttl",
    "remind_after",
    "remind_every",
    "expire_after",
    "reapply_cooldown",
    "personal_data_retention",
)
# The worker's probes, when WORKER_METRICS_ADDRESS and WORKER_HEALTH_ADDRESS leave them to
# it: the port given is the first tried, and a worker finding it taken (another worker on
# the host: a deploy's overlap, or one per core) takes the next pair up, two ports apart.
PROBE_PORT_STEP = 2
WORKERS_PER_HOST = 16


def describe(err: ValidationError) -> str:
    """A configuration error as a person fixes it: one line, naming each variable (never
    the value, which may be a secret)."""
    return "; ".join(
        (f"{'.'.join(str(part) for part in error['loc']).upper()}: " if error["loc"] else "")
        + error["msg"].removeprefix("Value error, ")
        for error in err.errors()
    )


def parse_payload_keys(value: str) -> dict[str, bytes]:
    """`id:key,id:key` (each key 32 bytes in base64) as an ordered mapping: the first encrypts."""
    keys: dict[str, bytes] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        key_id, _, encoded = entry.partition(":")
        if not KEY_ID.match(key_id):
            raise ValueError(
                "PAYLOAD_ENCRYPTION_KEYS entries are id:key, the id of letters, digits, '.', '_'"
                f" or '-' (up to 40); got one starting {key_id[:12]!r}"
            )
        try:
            # Standard or URL-safe alphabet alike.
            standard = encoded.strip().replace("-", "+").replace("_", "/")
            key = base64.b64decode(standard, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"PAYLOAD_ENCRYPTION_KEYS: the key {key_id!r} must be {KEY_BYTES} bytes in base64"
            )
        if key_id in keys:
            raise ValueError(f"PAYLOAD_ENCRYPTION_KEYS names {key_id!r} twice")
        keys[key_id] = key
    if not keys:
        raise ValueError("PAYLOAD_ENCRYPTION_KEYS names no key")
    return keys


class Settings(BaseSettings):
    """The variables of the CONTRACT, with its defaults."""

    # The project's .env, then one in the working directory; the environment wins over both.
    model_config = SettingsConfigDict(env_file=(HOME_DIR / ".env", ".env"), extra="ignore")

    # `production`: every process refuses to start without PRODUCTION_NEEDS, said outright.
    environment: Environment = Environment.LOCAL
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    onboarding_task_queue: str = "b2b-onboarding"
    # Worker Versioning (client/deployment.py): the workers of one release are one version of this
    # deployment; a workflow pinned to a version finishes on its code. The build id is the
    # release's (the package version and its commit) unless set, as a deploy pipeline or
    # `make dev` does.
    worker_deployment_name: str = Field(default="b2b-onboarding", pattern=r"^[A-Za-z0-9_-]+$")
    worker_build_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.+-]{1,200}$")

    sales_database_url: str = "sqlite:///var/sales.db"
    commerce_database_url: str = "sqlite:///var/commerce.db"

    smtp_host: str = "localhost"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    # STARTTLS on a submission port (587), or TLS from the first byte (465): one or neither.
    smtp_starttls: bool = False
    smtp_tls: bool = False
    # The CA that signs a private relay's certificate; unset, the system's CAs. Checked always.
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # Attempts an email gets while the relay refuses our login or we refuse its certificate
    # (time for an operator to fix it); then its notification fails, naming why.
    smtp_refused_attempts: int = Field(default=10, ge=1)
    mail_from: str = "B2B Partner Onboarding <no-reply@localhost>"

    b2b_site_url: str = "http://localhost:8000"
    sales_integration_enabled: bool = True

    # Users of the web app and API, `name:role:token` comma-separated; unset means the
    # demo users, which the web app only accepts while it listens on loopback.
    api_tokens: SecretStr | None = None
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65535)
    # Signs session cookies and requesters' status links; unset, one is kept in `var/`.
    web_secret_key: SecretStr | None = None
    temporal_ui_url: str = "http://localhost:8233"
    # Public submissions per client address, in `limits` notation ("10/minute").
    submit_rate_limit: str = "10/minute"
    # Where the limits count: "memory://" (this process), or a store every web process
    # shares, in `limits`' notation ("redis://127.0.0.1:6379/0").
    rate_limit_storage_uri: str = "memory://"
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks,
    # comma-separated); from anyone else the header is ignored.
    trusted_proxies: str = ""
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # How long an emailed activation, invitation or password-reset link stays valid.
    activation_ttl: timedelta = Field(default=timedelta(days=7), gt=timedelta(0))
    # Encrypt what Temporal keeps: `id:key` comma-separated, each key 32 bytes in base64;
    # the first encrypts, all decrypt. Unset: one made once and kept in `var/`.
    payload_encryption_keys: SecretStr | None = None
    # How long after its rejection a rejected applicant's personal data is kept.
    personal_data_retention: timedelta = Field(default=timedelta(days=90), gt=timedelta(0))

    # Time on an undecided request (read by the worker when the request is recorded, so a
    # change applies to requests created after it): the team whose move it is is reminded
    # after REMIND_AFTER and then every REMIND_EVERY, and the request is rejected by the
    # system (reason code `expired`) after EXPIRE_AFTER. Time on hold does not count.
    remind_after: timedelta = Field(default=timedelta(days=3), gt=timedelta(0))
    remind_every: timedelta = Field(default=timedelta(days=3), gt=timedelta(0))
    expire_after: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))
    # Who is reminded: the sales team while the lead or opportunity is open, the Commerce
    # team while the request awaits approval; unset, MAIL_FROM's address.
    sales_team_email: EmailStr | None = None
    commerce_team_email: EmailStr | None = None
    # After a rejection, how long before the same email may apply again (0: at once).
    reapply_cooldown: timedelta = Field(default=timedelta(days=30), ge=timedelta(0))

    # The worker's Prometheus endpoint (the SDK's own metrics and the product's emails), and
    # its /healthz and /readyz; each `host:port`, or empty for none. A port taken by another
    # worker: the next pair up (PROBE_PORT_STEP).
    worker_metrics_address: str = "127.0.0.1:9464"
    worker_health_address: str = "127.0.0.1:9465"
    # Where traces go (OTLP over HTTP, the base URL as OpenTelemetry means it); unset, none.
    otel_exporter_otlp_endpoint: str | None = None

    @property
    def own_addresses(self) -> frozenset[str]:
        """The service's own mailboxes (MAIL_FROM's and the teams'), in lower case."""
        addresses = (parseaddr(self.mail_from)[1], self.sales_team_email, self.commerce_team_email)
        return frozenset(address.lower() for address in addresses if address)

    @model_validator(mode="after")
    def _production_names_its_own(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            missing = [
                name.upper()
                for name in PRODUCTION_NEEDS
                if name not in self.model_fields_set or getattr(self, name) is None
            ]
            relative = [
                name.upper()
                for name in ("sales_database_url", "commerce_database_url")
                if name.upper() not in missing and _relative_sqlite(getattr(self, name))
            ]
            problems = []
            if missing:
                problems.append(f"set {', '.join(missing)}")
            if relative:
                problems.append(f"{', '.join(relative)}: a SQLite path must be absolute")
            if problems:
                raise ValueError(
                    f"ENVIRONMENT=production: {'; '.join(problems)} (in production no process"
                    " makes its own keys, secret or store files)"
                )
        return self

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> Settings:
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError("SMTP_TLS and SMTP_STARTTLS: one or the other, not both")
        return self

    @field_validator("mail_from")
    @classmethod
    def _single_line_sender(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("MAIL_FROM must be a single line")
        return value

    @field_validator("web_secret_key")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("WEB_SECRET_KEY must be at least 32 characters")
        return value

    @field_validator(*DURATIONS, mode="before")
    @classmethod
    def _seconds_or_iso(cls, value: object) -> object:
        """A duration as seconds (`30`, `0.5`) or ISO 8601 (`P3D`, `PT12H`): pydantic reads
        a number as seconds, but not a number written as text, as the environment has it."""
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value

    @field_validator(*DURATIONS)
    @classmethod
    def _within_a_century(cls, value: timedelta) -> timedelta:
        if value > LONGEST_DURATION:
            raise ValueError(
                f"at most {LONGEST_DURATION.days} days (P{LONGEST_DURATION.days}D), not"
                f" {value.days} days"
            )
        return value

    @field_validator("worker_metrics_address", "worker_health_address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        _, colon, port = value.rpartition(":")
        highest = 65535 - PROBE_PORT_STEP * WORKERS_PER_HOST
        if value and not (colon and port.isdigit() and 0 < int(port) <= highest):
            raise ValueError(f"host:port with a port up to {highest}, or empty for none")
        return value

    @field_validator("payload_encryption_keys")
    @classmethod
    def _readable_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_payload_keys(value.get_secret_value())
        return value

    @field_validator("sales_database_url", "commerce_database_url")
    @classmethod
    def _sqlite_path_from_home(cls, url: str, info: ValidationInfo) -> str:
        """Relative SQLite paths mean HOME_DIR's `var/`, wherever a process starts; in
        production, where the working directory is a service's guess, a path is absolute."""
        prefix = "sqlite:///"
        if _relative_sqlite(url) and info.data.get("environment") is not Environment.PRODUCTION:
            return prefix + str(HOME_DIR / url.removeprefix(prefix))
        return url


def _relative_sqlite(url: str) -> bool:
    prefix = "sqlite:///"
    return url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url


@lru_cache
def get_settings() -> Settings:
    return Settings()
