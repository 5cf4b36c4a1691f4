"""Background work of the tiers service, wired to the worker: folding points facts into
metrics (re-evaluating the member at once), recording activity for value scores and groups,
letting rolling windows roll, re-evaluating members after a policy change and stratifying
percentile tenants. The work itself is in the features and the shared activity fold; this
module only names the actors and jobs."""

from __future__ import annotations

from datetime import UTC, datetime

from services.runtime.bus import ActorSpec, PeriodicJob, consume_batches
from services.runtime.worker import WorkerContext
from services.tiers.activity import apply_activities
from services.tiers.app import TiersComponents
from services.tiers.policy.policy import Policies

QUEUE = "tiers"


async def _policies() -> Policies:
    return (await WorkerContext.components("tiers", TiersComponents)).policies


async def apply_points_event(bodies: str | list[str]) -> None:
    resources = await WorkerContext.resources()
    await consume_batches(resources.pool, "tiers.apply_points_event", bodies,
                          (await _policies()).points_events_handler())


async def record_activity(bodies: str | list[str]) -> None:
    resources = await WorkerContext.resources()
    await consume_batches(resources.pool, "tiers.record_activity", bodies, apply_activities)


async def roll_windows(at: str | None = None) -> None:
    """Re-evaluate members whose windowed metrics moved without a new event; ``at``
    (RFC 3339) evaluates as of another time."""
    now = datetime.fromisoformat(at) if at else datetime.now(UTC)
    await (await _policies()).roll_windows(now)


async def reevaluate_members() -> None:
    """Every member of tenants whose policy changed, evaluated again; resumable (the record
    of the work is in PostgreSQL), run every few seconds."""
    await (await _policies()).reevaluate_members()


async def evaluate_lifecycles() -> None:
    """The daily AIPL evaluation of every tenant with a lifecycle model (run hourly: a tenant
    is due when its last evaluation was on an earlier local day or under an older model)."""
    await (await WorkerContext.components("tiers", TiersComponents)).lifecycle.evaluate_due()


async def refresh_segments() -> None:
    """Segments not computed yet on their tenant's local day, computed again."""
    components = await WorkerContext.components("tiers", TiersComponents)
    await components.segments.refresh_due(datetime.now(UTC))


async def evaluate_tags() -> None:
    """Rule tags of tenants last evaluated before their local today, evaluated now."""
    await (await WorkerContext.components("tiers", TiersComponents)).tags.evaluate_due()


async def stratify_all() -> None:
    """The scheduled stratification of every tenant with a percentile policy."""
    await (await _policies()).stratify_all()


ACTORS: list[ActorSpec] = [
    ActorSpec("tiers.apply_points_event", QUEUE, apply_points_event),
    ActorSpec("tiers.record_activity", QUEUE, record_activity),
    ActorSpec("tiers.roll_windows", QUEUE, roll_windows, max_retries=3),
    ActorSpec("tiers.reevaluate_members", QUEUE, reevaluate_members, max_retries=3,
              time_limit_ms=3_600_000),
    ActorSpec("tiers.stratify_all", QUEUE, stratify_all, max_retries=3,
              time_limit_ms=3_600_000),
    ActorSpec("tiers.evaluate_lifecycles", QUEUE, evaluate_lifecycles, max_retries=3,
              time_limit_ms=3_600_000),
    ActorSpec("tiers.refresh_segments", QUEUE, refresh_segments, max_retries=3,
              time_limit_ms=3_600_000),
    ActorSpec("tiers.evaluate_tags", QUEUE, evaluate_tags, max_retries=3,
              time_limit_ms=3_600_000),
]
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("tiers.roll_windows", QUEUE, every_s=3600),
    PeriodicJob("tiers.reevaluate_members", QUEUE, every_s=5),
    PeriodicJob("tiers.stratify_all", QUEUE, every_s=86_400),
    PeriodicJob("tiers.evaluate_lifecycles", QUEUE, every_s=3600),
    PeriodicJob("tiers.refresh_segments", QUEUE, every_s=3600),
    PeriodicJob("tiers.evaluate_tags", QUEUE, every_s=3600),
]
