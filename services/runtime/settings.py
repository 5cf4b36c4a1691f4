"""Settings: one frozen Struct, read once from ``FULI_*`` environment variables."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

PREFIX = "FULI_"

RATE_LIMIT_ENTRY = re.compile(r"^(key|member)\.([a-z_]+)=(\d+)/(\d+)$")

DEFAULT_RATE_LIMITS = (
    "key.default=60000/60,key.events=600000/60,"
    "member.default=600/60,member.write=120/60"
)

# Readiness limits where a worker runs beside the server (``fuli up``): see Settings.
DEFAULT_READY_MAX_HEARTBEAT_AGE_S = 15.0
DEFAULT_READY_MAX_LAG_S = 60.0


class SettingsError(Exception):
    """A bad setting: the message names the variable."""


class RateLimit(msgspec.Struct, frozen=True):
    limit: int
    period_s: int


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    data_dir: str = ".fuli"
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 8000
    bootstrap_key: Annotated[str, Meta(min_length=16, max_length=256)] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 4_000_000
    db_pool_min: Annotated[int, Meta(ge=1)] = 2
    db_pool_max: Annotated[int, Meta(ge=1)] = 20
    redis_pool_max: Annotated[int, Meta(ge=1)] = 100
    auth_cache_ttl_s: Annotated[float, Meta(ge=0)] = 5.0
    member_token_max_ttl_s: Annotated[int, Meta(ge=60)] = 86_400
    rate_limits: str = DEFAULT_RATE_LIMITS
    outbox_poll_ms: Annotated[int, Meta(ge=10)] = 200
    # An event a consumer has not applied this long after it was sent is sent again (then
    # after twice as long, and so on up to ten minutes).
    event_resend_after_s: Annotated[float, Meta(ge=1)] = 20.0
    worker_threads: Annotated[int, Meta(ge=1)] = 4
    # API processes `fuli up` and `fuli serve` run on one listening socket, each with its own
    # connection pools and group committer.
    workers: Annotated[int, Meta(ge=1, le=64)] = 1
    worker: bool = True
    # How often a worker records that it is alive (fuli.worker_heartbeats).
    worker_heartbeat_s: Annotated[float, Meta(gt=0)] = 3.0
    # /health/ready fails when the newest worker heartbeat is older than this, or the oldest
    # event not yet applied is older than that. None: off, except under a `fuli up` that runs
    # the worker, which fills in the defaults above (with_worker_readiness); 0: off everywhere.
    ready_max_heartbeat_age_s: Annotated[float, Meta(ge=0)] | None = None
    ready_max_lag_s: Annotated[float, Meta(ge=0)] | None = None
    # Idle keep-alive connections are closed after this; longer than the idle timeouts of
    # clients and load balancers (httpx 5 s, nginx and most balancers 60 s), so that the
    # client, not the server, closes an idle connection and never sends into one being closed.
    http_keep_alive_s: Annotated[int, Meta(ge=1)] = 75
    event_group_commit: bool = True
    points_url: str | None = None
    tiers_url: str | None = None
    # Webhooks. Signing secrets are derived from this key (any text of 16+ characters) and a
    # random salt per secret; unset, a key generated once is kept in the database.
    webhooks_key: Annotated[str, Meta(min_length=16, max_length=512)] | None = None
    # Endpoints may use plain http when they ask for it (``allow_http``).
    webhooks_allow_http: bool = False
    # Targets resolving to loopback, private, link-local or other non-public addresses are
    # allowed (and http with them): for tests and local development only.
    webhooks_allow_private: bool = False
    # Multiplies the retry schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h): tests shorten it.
    webhooks_retry_scale: Annotated[float, Meta(gt=0, le=10)] = 1.0
    # Deliveries in flight at once per endpoint, and per sending process.
    webhooks_endpoint_concurrency: Annotated[int, Meta(ge=1, le=100)] = 4
    webhooks_process_concurrency: Annotated[int, Meta(ge=1, le=10_000)] = 64
    # An endpoint failing every delivery this long is disabled.
    webhooks_disable_after_s: Annotated[float, Meta(gt=0)] = 5 * 86_400.0
    # The built console served at /console/ (Vite's dist/); unset: console/dist of this
    # checkout, which `make run` builds.
    console_dir: str | None = None

    @property
    def embedded(self) -> bool:
        """True when fuli must start its own PostgreSQL and Redis servers."""
        return self.database_url is None or self.redis_url is None

    def with_worker_readiness(self) -> Settings:
        """These settings with the readiness limits that were left unset at their defaults:
        for a process that runs the worker beside the server, so readiness includes it."""
        return msgspec.structs.replace(
            self,
            ready_max_heartbeat_age_s=(DEFAULT_READY_MAX_HEARTBEAT_AGE_S
                                       if self.ready_max_heartbeat_age_s is None
                                       else self.ready_max_heartbeat_age_s),
            ready_max_lag_s=(DEFAULT_READY_MAX_LAG_S if self.ready_max_lag_s is None
                             else self.ready_max_lag_s),
        )

    def rate_limit(self, principal_kind: str, group: str) -> RateLimit:
        table = parse_rate_limits(self.rate_limits)
        return table.get((principal_kind, group)) or table[(principal_kind, "default")]


@functools.lru_cache(maxsize=8)
def parse_rate_limits(spec: str) -> dict[tuple[str, str], RateLimit]:
    """``key.events=600000/60,member.default=600/60`` -> {(kind, group): RateLimit}."""
    table: dict[tuple[str, str], RateLimit] = {}
    for entry in DEFAULT_RATE_LIMITS.split(",") + [e for e in spec.split(",") if e.strip()]:
        match = RATE_LIMIT_ENTRY.match(entry.strip())
        if match is None:
            raise ValueError(f"bad rate limit {entry.strip()!r}, expected e.g. key.events=1000/60")
        kind, group, limit, period = match.groups()
        if int(limit) < 1 or int(period) < 1:
            raise ValueError(f"bad rate limit {entry.strip()!r}: limit and period must be >= 1")
        table[(kind, group)] = RateLimit(int(limit), int(period))
    return table


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read ``FULI_<FIELD>`` variables; a bad value raises SettingsError naming the variable."""
    environ = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        name = PREFIX + field.name.upper()
        value = environ.get(name)
        if value is not None and value != "":
            raw[field.name] = value
    raw.update(overrides)
    for name in raw:
        try:
            msgspec.convert({name: raw[name]}, Settings, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"{PREFIX}{name.upper()}={raw[name]!r}: {exc}") from None
    settings = msgspec.convert(raw, Settings, strict=False)
    try:
        parse_rate_limits(settings.rate_limits)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}RATE_LIMITS: {exc}") from None
    for name, url, schemes in (
        ("DATABASE_URL", settings.database_url, ("postgres://", "postgresql://")),
        ("REDIS_URL", settings.redis_url, ("redis://", "rediss://", "unix://")),
        ("BROKER_URL", settings.broker_url, ("redis://", "rediss://", "unix://", "amqp://", "amqps://")),
        ("POINTS_URL", settings.points_url, ("http://", "https://")),
        ("TIERS_URL", settings.tiers_url, ("http://", "https://")),
    ):
        if url is not None and not url.startswith(schemes):
            raise SettingsError(f"{PREFIX}{name}: expected a URL starting with one of {schemes}")
    if settings.db_pool_min > settings.db_pool_max:
        raise SettingsError(f"{PREFIX}DB_POOL_MIN must not exceed {PREFIX}DB_POOL_MAX")
    max_age = settings.ready_max_heartbeat_age_s
    if max_age and max_age <= settings.worker_heartbeat_s:
        raise SettingsError(f"{PREFIX}READY_MAX_HEARTBEAT_AGE_S must exceed "
                            f"{PREFIX}WORKER_HEARTBEAT_S ({settings.worker_heartbeat_s:g} s)")
    return settings
