"""The service's settings: declared once as data, read from `leadscore.toml`, then the
environment, then command-line flags (each overriding the one before).

The admin token is never stored: the file keeps its SHA-256 (`admin_token_sha256`), and
`LEADSCORE_ADMIN_TOKEN` may give the token itself (it is hashed on reading). Write keys are
stored as they are: like Segment's, they are embedded in web pages and only let a client write.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from leadscore.errors import LeadscoreError
from leadscore.filters import Filters
from leadscore.yamlfile import suggest

CONFIG_FILE = "leadscore.toml"


class ConfigError(LeadscoreError):
    """A setting in the config file or the environment has the wrong type or value."""


@dataclass(frozen=True)
class Webhook:
    """A URL that receives handoffs, and the secret their HMAC-SHA256 signature is made with."""

    url: str
    secret: str = ""


@dataclass(frozen=True)
class Setting:
    """One setting: its key in the file, its environment variable, its type and what it does."""

    key: str
    env: str | None
    kind: type
    help: str


# Declared once: the file format, the environment and `leadscore init` all come from this.
SETTINGS: tuple[Setting, ...] = (
    Setting("db", "LEADSCORE_DB", str,
            "database URL: sqlite:///path.db (default) or postgresql://user@host/db"),
    Setting("models_dir", "LEADSCORE_MODELS", str,
            "folder of model YAML files loaded at start (relative to the config file)"),
    Setting("write_keys", "LEADSCORE_WRITE_KEYS", list,
            "write keys accepted by the ingestion API (HTTP Basic user name); comma-separated "
            "in the environment"),
    Setting("admin_token_sha256", "LEADSCORE_ADMIN_TOKEN", str,
            "SHA-256 (hex) of the admin bearer token; the environment variable gives the "
            "token itself"),
    Setting("sales_key_sha256", "LEADSCORE_SALES_KEY", str,
            "SHA-256 (hex) of the optional sales key: it reads leads and gives feedback, "
            "nothing else; empty: none; the environment variable gives the key itself"),
    Setting("webhooks", "LEADSCORE_WEBHOOK_URLS", list,
            "handoff webhooks, [{url, secret}]; comma-separated URLs in the environment, "
            "signed with LEADSCORE_WEBHOOK_SECRET"),
    Setting("smtp_url", "LEADSCORE_SMTP_URL", str,
            "smtp://[user:password@]host:port for handoff e-mails (smtps:// for TLS); "
            "empty: no e-mail"),
    Setting("smtp_from", "LEADSCORE_SMTP_FROM", str, "sender address of handoff e-mails"),
    Setting("smtp_to", "LEADSCORE_SMTP_TO", list,
            "recipients of handoff e-mails; comma-separated in the environment"),
    Setting("lifecycle_dir", "LEADSCORE_LIFECYCLE_DIR", str,
            "folder with segments/, programs/, templates/ and content.yaml (default: the models "
            "folder's parent)"),
    Setting("public_url", "LEADSCORE_PUBLIC_URL", str,
            "the server's address as e-mail readers reach it (tracked links, unsubscribe)"),
    Setting("link_secret", "LEADSCORE_LINK_SECRET", str,
            "secret that signs tracked, unsubscribe and confirmation links; required before "
            "any program e-mail is made (`leadscore init` writes a random one)"),
    Setting("emails_per_week", "LEADSCORE_EMAILS_PER_WEEK", int,
            "most program e-mails an address receives in any 7 days, across programs and "
            "lead ids"),
    Setting("emails_per_address_per_hour", "LEADSCORE_EMAILS_PER_ADDRESS_PER_HOUR", int,
            "most program e-mails an address receives in any hour (0: no limit)"),
    Setting("email_rate_per_second", "LEADSCORE_EMAIL_RATE_PER_SECOND", float,
            "most program e-mails one process hands to SMTP per second (0: no limit)"),
    Setting("trusted_write_keys", "LEADSCORE_TRUSTED_WRITE_KEYS", list,
            "write keys of your own servers (also in write_keys, never in a web page) whose "
            "`Unsubscribed` / `Opted In` events opt an address out / in; comma-separated in "
            "the environment"),
    Setting("cors_origins", "LEADSCORE_CORS_ORIGINS", list,
            "web sites (https://www.example.com) whose pages may send to /v1 from the browser "
            "(analytics.js, RudderStack); `*` for any site; empty: none. A request from another "
            "site's page is refused (403); comma-separated in the environment"),
    Setting("write_key_origins", "LEADSCORE_WRITE_KEY_ORIGINS", list,
            "binds a write key to its sites: `key=https://www.example.com` entries; a bound "
            "key sent from any other site's page is refused (403); comma-separated in the "
            "environment"),
    Setting("enrol_max_age_hours", "LEADSCORE_ENROL_MAX_AGE_HOURS", float,
            "an event older than this when it arrives scores but enrols no one in a program "
            "(history must not trigger e-mail); 0: no limit"),
    Setting("double_opt_in", "LEADSCORE_DOUBLE_OPT_IN", bool,
            "program e-mail only to addresses that confirmed it: the first one asks with a "
            "signed link (template `confirm`)"),
    Setting("delivery_max_attempts", "LEADSCORE_DELIVERY_MAX_ATTEMPTS", int,
            "failed attempts after which a delivery (handoff webhook or e-mail, program "
            "webhook, e-mail or event) is a dead letter: shown on the dashboard and API, "
            "retried only by hand"),
    Setting("host", "LEADSCORE_HOST", str, "address the server listens on"),
    Setting("port", "LEADSCORE_PORT", int, "port the server listens on"),
    Setting("workers", "LEADSCORE_WORKERS", int, "API worker processes"),
    Setting("log_level", "LEADSCORE_LOG_LEVEL", str, "debug | info | warning | error"),
    Setting("log_requests", "LEADSCORE_LOG_REQUESTS", bool, "log one JSON line per request"),
    Setting("delivery_poll_seconds", "LEADSCORE_DELIVERY_POLL_SECONDS", float,
            "how often the dispatcher looks for due handoffs"),
    Setting("delivery_timeout_seconds", "LEADSCORE_DELIVERY_TIMEOUT_SECONDS", float,
            "timeout of one webhook request or SMTP session"),
    Setting("delivery_lease_seconds", "LEADSCORE_DELIVERY_LEASE_SECONDS", float,
            "how long a batch of program actions claimed by a process is its own; after a "
            "crash the ones it never attempted are sent once the lease has passed"),
    Setting("retry_base_seconds", "LEADSCORE_RETRY_BASE_SECONDS", float,
            "first retry delay of a failed delivery; doubled each attempt, with jitter"),
    Setting("retry_max_seconds", "LEADSCORE_RETRY_MAX_SECONDS", float,
            "longest delay between two delivery attempts"),
    Setting("refresh_seconds", "LEADSCORE_REFRESH_SECONDS", float,
            "how often the server saves again the scores time has moved (decay, a date's "
            "age), for the lead listing's filters and sort (0: never)"),
    Setting("sales_sweep_seconds", "LEADSCORE_SALES_SWEEP_SECONDS", float,
            "how often the server checks sales' SLAs (routing.yaml accept_within_hours) and "
            "expires manual adjustments"),
    Setting("sqlite_synchronous", "LEADSCORE_SQLITE_SYNCHRONOUS", str,
            "full: an acknowledged message survives a power cut (an fsync per commit); "
            "normal: it survives a crash of the server, not of the machine (faster)"),
    Setting("rate_limit_per_key", "LEADSCORE_RATE_LIMIT_PER_KEY", float,
            "messages a second one write key may send (a batch counts its messages; bursts "
            "of 5 seconds' worth pass); over it: 429 with Retry-After. 0: no limit"),
    Setting("rate_limit_per_ip", "LEADSCORE_RATE_LIMIT_PER_IP", float,
            "messages a second one client address may send to the ingestion API (as "
            "rate_limit_per_key). 0: no limit"),
    Setting("trusted_proxies", "LEADSCORE_TRUSTED_PROXIES", list,
            "addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are "
            "believed (the client's address for rate limits; https for Secure cookies and "
            "HSTS); '*' trusts any. Default: none"),
    Setting("event_retention_days", "LEADSCORE_EVENT_RETENTION_DAYS", int,
            "delete logged events older than this many days (scores keep what they earned); "
            "0: keep every event"),
    Setting("filters", "LEADSCORE_FILTERS", dict,
            "what keeps events out of scoring (stored, counted, never scored): a [filters] "
            "table of bots, user_agents, ips, internal_domains, lead_ids, link_scanners, "
            "link_scanner_seconds (docs/filters.md); a JSON object in the environment"),
)


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to run; build with `load_settings`."""

    db: str = "sqlite:///leadscore.db"
    models_dir: str = "models"
    write_keys: tuple[str, ...] = ()
    admin_token_sha256: str | None = None
    sales_key_sha256: str | None = None
    webhooks: tuple[Webhook, ...] = ()
    smtp_url: str | None = None
    smtp_from: str = "leadscore@localhost"
    smtp_to: tuple[str, ...] = ()
    lifecycle_dir: str | None = None
    public_url: str | None = None
    link_secret: str | None = None
    emails_per_week: int = 3
    emails_per_address_per_hour: int = 2
    email_rate_per_second: float = 10.0
    trusted_write_keys: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    write_key_origins: tuple[str, ...] = ()
    enrol_max_age_hours: float = 24.0
    double_opt_in: bool = False
    delivery_max_attempts: int = 10
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    log_requests: bool = True
    delivery_poll_seconds: float = 0.2
    delivery_timeout_seconds: float = 10.0
    delivery_lease_seconds: float = 60.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 3600.0
    refresh_seconds: float = 300.0
    sales_sweep_seconds: float = 30.0
    sqlite_synchronous: str = "full"
    rate_limit_per_key: float = 1000.0
    rate_limit_per_ip: float = 500.0
    trusted_proxies: tuple[str, ...] = ()
    event_retention_days: int = 0
    filters: Filters = field(default_factory=Filters)
    config_file: str | None = field(default=None, compare=False)

    def is_admin_token(self, token: str) -> bool:
        return self.admin_token_sha256 is not None and hmac.compare_digest(
            hash_token(token), self.admin_token_sha256)

    def is_sales_key(self, key: str) -> bool:
        return bool(self.sales_key_sha256) and hmac.compare_digest(
            hash_token(key), str(self.sales_key_sha256))

    def is_write_key(self, key: str) -> bool:
        # As bytes: compare_digest refuses str with non-ASCII characters (a 500 before).
        given = key.encode("utf-8", "surrogatepass")
        return any(hmac.compare_digest(given, known.encode("utf-8", "surrogatepass"))
                   for known in self.write_keys)

    def is_trusted_key(self, key: str | None) -> bool:
        """A write key of the operator's own servers (`trusted_write_keys`)."""
        return key is not None and self.is_write_key(key) and any(
            hmac.compare_digest(key.encode(), known.encode())
            for known in self.trusted_write_keys)

    def to_json(self) -> dict[str, Any]:
        """The settings as plain JSON values (how `serve` hands them to worker processes)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "webhooks":
                value = [{"url": w.url, "secret": w.secret} for w in value]
            elif isinstance(value, Filters):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Settings:
        return _apply(cls(), data, source="settings")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_write_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)


def new_admin_token() -> str:
    return "adm_" + secrets.token_urlsafe(32)


def load_settings(config_file: str | Path | None = None, *,
                  env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Defaults, then the config file (`config_file`, else `$LEADSCORE_CONFIG`, else
    `./leadscore.toml` if there), then the environment, then `overrides` (flags that were given).
    Relative paths in the file (models_dir, a SQLite database) are relative to the file."""
    env = os.environ if env is None else env
    settings = Settings()
    path = Path(config_file) if config_file else (
        Path(env["LEADSCORE_CONFIG"]) if env.get("LEADSCORE_CONFIG") else None)
    if path is None and Path(CONFIG_FILE).is_file():
        path = Path(CONFIG_FILE)
    if path is not None:
        settings = _apply(settings, read_file(path), source=str(path))
        settings = replace(settings, config_file=str(path),
                           models_dir=_relative_to(path, settings.models_dir),
                           lifecycle_dir=_relative_to(path, settings.lifecycle_dir)
                           if settings.lifecycle_dir else None,
                           db=_sqlite_relative_to(path, settings.db))
    settings = _apply(settings, _from_env(env), source="environment")
    if overrides:
        settings = _apply(settings, {k: v for k, v in overrides.items() if v is not None},
                          source="command line")
    return settings


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    known = {s.key for s in SETTINGS}
    for key in data:
        if key not in known:
            close = suggest(key, sorted(known))
            hint = f"; did you mean {close!r}?" if close else ""
            raise ConfigError(f"{path}: unknown setting {key!r}{hint}")
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = env.get(setting.env or "")
        if raw is None or setting.env is None:
            continue
        if setting.key in ("admin_token_sha256", "sales_key_sha256"):
            out[setting.key] = hash_token(raw) if raw else None
        elif setting.key == "webhooks":
            secret = env.get("LEADSCORE_WEBHOOK_SECRET", "")
            out[setting.key] = [{"url": u.strip(), "secret": secret}
                                for u in raw.split(",") if u.strip()]
        elif setting.kind is dict:
            try:
                out[setting.key] = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                raise ConfigError(f"environment: {setting.env}: not a JSON object: {exc}") \
                    from None
        elif setting.kind is list:
            out[setting.key] = [part.strip() for part in raw.split(",") if part.strip()]
        elif setting.kind is bool:
            out[setting.key] = raw.strip().lower() in ("1", "true", "yes", "on")
        else:
            out[setting.key] = raw
    return out


def _apply(settings: Settings, data: Mapping[str, Any], *, source: str) -> Settings:
    changes: dict[str, Any] = {}
    types = {s.key: s.kind for s in SETTINGS}
    for key, value in data.items():
        if key == "config_file":
            changes[key] = value
            continue
        kind = types.get(key)
        if kind is None:
            raise ConfigError(f"{source}: unknown setting {key!r}")
        changes[key] = _coerce(key, kind, value, source)
    return replace(settings, **changes)


def _coerce(key: str, kind: type, value: Any, source: str) -> Any:
    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key} = {value!r}: expected {expected}")

    if value is None:
        if key in ("admin_token_sha256", "sales_key_sha256", "smtp_url", "lifecycle_dir",
                   "public_url", "link_secret"):
            return None
        raise wrong(kind.__name__)
    if key == "webhooks":
        if not isinstance(value, list):
            raise wrong("a list of {url, secret} tables")
        hooks = []
        for item in value:
            if isinstance(item, str):
                item = {"url": item}
            if not isinstance(item, Mapping) or not isinstance(item.get("url"), str) \
                    or not isinstance(item.get("secret", ""), str):
                raise wrong("a list of {url, secret} tables")
            if not item["url"].startswith(("http://", "https://")):
                raise wrong("webhook URLs starting with http:// or https://")
            if not item.get("secret", "").strip():
                # Unsigned deliveries would let anyone who finds the URL forge handoffs.
                raise ConfigError(f"{source}: webhook {item['url']!r} has no secret: each "
                                  "webhook needs one (`secret = \"…\"`, or "
                                  "LEADSCORE_WEBHOOK_SECRET) to sign its deliveries")
            hooks.append(Webhook(item["url"], item.get("secret", "")))
        return tuple(hooks)
    if kind is dict:
        return _filters(key, value, source)
    if kind is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise wrong("a list of strings")
        return tuple(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if kind in (int, float):
        if isinstance(value, bool):
            raise wrong(kind.__name__)
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise wrong("a number" if kind is float else "a whole number") from None
        if number < 0 or not math.isfinite(number) or (
                key in ("workers", "delivery_max_attempts") and number < 1):
            raise wrong("a positive number")
        return number
    if not isinstance(value, str):
        raise wrong("a string")
    if key == "log_level" and value.lower() not in ("debug", "info", "warning", "error"):
        raise wrong("debug, info, warning or error")
    if key == "sqlite_synchronous" and value.lower() not in ("full", "normal"):
        raise wrong("full or normal")
    if key == "smtp_url" and value and not value.startswith(("smtp://", "smtps://")):
        raise wrong("smtp://host:port or smtps://host:port")
    if key == "smtp_url":
        return value or None
    return value.lower() if key in ("log_level", "sqlite_synchronous") else value


def _filters(key: str, value: Any, source: str) -> Filters:
    """The `filters` table, each problem named by its key (with a suggestion for a typo)."""
    if isinstance(value, Filters):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {key} = {value!r}: expected a table of filters "
                          f"({', '.join(Filters.model_fields)})")
    try:
        return Filters.model_validate(dict(value))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in (key, *error["loc"]))
        if error["type"] == "extra_forbidden":
            close = suggest(str(error["loc"][0]), sorted(Filters.model_fields))
            hint = f"; did you mean {close!r}?" if close else ""
            raise ConfigError(f"{source}: unknown setting {where!r}{hint}") from None
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{source}: {where} = {error.get('input')!r}: {message}") from None


def _relative_to(config: Path, path: str) -> str:
    return path if Path(path).is_absolute() else str(config.parent / path)


def _sqlite_relative_to(config: Path, url: str) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((config.parent / url[len(prefix):]).resolve())
    return url


# `leadscore init` starts segments/, programs/ and templates/ beside models/ with these
# examples from the demo (the art shop's welcome program), each written only if missing.
LIFECYCLE_EXAMPLES = ("segments/engaged-painters.yaml", "programs/welcome.yaml",
                      "templates/welcome.txt", "templates/reminder.txt", "templates/tips.txt",
                      "content.yaml")


# `init` writes its example programs switched off: nothing is e-mailed before someone chose to.
PROGRAM_SWITCHED_OFF = (
    "# An example program, switched off: it enrols no one and sends nothing. To switch it on,\n"
    "# check its model, templates and steps (`leadscore programs simulate` shows who it would\n"
    "# e-mail), set smtp_url in leadscore.toml, then write `enabled: true` here.\n"
    "enabled: false\n")


def _write_lifecycle_examples(directory: Path) -> None:
    source = Path(__file__).parent / "demo" / "lifecycle"
    for folder in ("segments", "programs", "templates"):
        (directory / folder).mkdir(parents=True, exist_ok=True)
    for name in LIFECYCLE_EXAMPLES:
        target = directory / name
        if not target.exists():
            text = (source / name).read_text(encoding="utf-8")
            if name.startswith("programs/"):
                text = PROGRAM_SWITCHED_OFF + text
            target.write_text(text, encoding="utf-8")


def filters_table(setting: Setting) -> list[str]:
    """The `[filters]` table as `init` writes it: every key at its default, each with its
    help (a table comes after the plain settings in TOML)."""
    lines = [f"# {setting.help} [${setting.env}]", "[filters]"]
    for name, info in Filters.model_fields.items():
        lines.append(f"# {info.description}")
        lines.append(tomli_w.dumps({name: Filters().to_json()[name]}).strip())
    return [*lines, ""]


def write_config(directory: Path, *, db: str | None = None, models_dir: str = "models",
                 overwrite: bool = False) -> tuple[Path, str, str]:
    """Write a new `leadscore.toml` in `directory` with a fresh write key and admin token.

    Returns (path, write key, admin token); only the token's hash is written."""
    path = directory / CONFIG_FILE
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists already (use --force to replace it)")
    write_key, token = new_write_key(), new_admin_token()
    values: dict[str, Any] = {
        "db": db or "sqlite:///leadscore.db",
        "models_dir": models_dir,
        "write_keys": [write_key],
        "admin_token_sha256": hash_token(token),
        "sales_key_sha256": "",
        "smtp_url": "",
        "smtp_from": Settings.smtp_from,
        "smtp_to": [],
        "lifecycle_dir": ".",
        "public_url": "",
        "link_secret": secrets.token_urlsafe(32),
        "emails_per_week": Settings.emails_per_week,
        "emails_per_address_per_hour": Settings.emails_per_address_per_hour,
        "email_rate_per_second": Settings.email_rate_per_second,
        "trusted_write_keys": [],
        "cors_origins": [],
        "write_key_origins": [],
        "enrol_max_age_hours": Settings.enrol_max_age_hours,
        "double_opt_in": Settings.double_opt_in,
        "delivery_max_attempts": Settings.delivery_max_attempts,
        "host": Settings.host,
        "port": Settings.port,
        "workers": Settings.workers,
        "log_level": Settings.log_level,
        "log_requests": Settings.log_requests,
        "delivery_poll_seconds": Settings.delivery_poll_seconds,
        "delivery_timeout_seconds": Settings.delivery_timeout_seconds,
        "delivery_lease_seconds": Settings.delivery_lease_seconds,
        "retry_base_seconds": Settings.retry_base_seconds,
        "retry_max_seconds": Settings.retry_max_seconds,
        "refresh_seconds": Settings.refresh_seconds,
        "sales_sweep_seconds": Settings.sales_sweep_seconds,
        "sqlite_synchronous": Settings.sqlite_synchronous,
        "rate_limit_per_key": Settings.rate_limit_per_key,
        "rate_limit_per_ip": Settings.rate_limit_per_ip,
        "trusted_proxies": [],
        "event_retention_days": Settings.event_retention_days,
    }
    lines = ["# leadscore service settings (`leadscore serve --config` reads this file).",
             "# Each can be overridden by the environment variable named beside it.", ""]
    for setting in SETTINGS:
        if setting.key in ("webhooks", "filters"):
            continue
        lines.append(f"# {setting.help} [${setting.env}]")
        lines.append(tomli_w.dumps({setting.key: values[setting.key]}).strip())
    hooks = next(s for s in SETTINGS if s.key == "webhooks")
    lines += ["", f"# {hooks.help} [${hooks.env}]", "# [[webhooks]]",
              '# url = "https://crm.example/hooks/leadscore"', '# secret = "change me"', ""]
    lines += filters_table(next(s for s in SETTINGS if s.key == "filters"))
    directory.mkdir(parents=True, exist_ok=True)
    models = directory / models_dir
    models.mkdir(parents=True, exist_ok=True)
    if not any(models.glob("*.yaml")):
        # Start from the example models, so `leadscore serve` scores from the first event.
        examples = Path(__file__).parent / "demo" / "models"
        for example in sorted(examples.glob("*.yaml")):
            (models / example.name).write_text(example.read_text(encoding="utf-8"),
                                               encoding="utf-8")
    _write_lifecycle_examples(directory)
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path, write_key, token
