"""The AIPL lifecycle: the tenant's model, evaluations that move every known member to their
stage in one SQL pass (daily by the worker, or on demand), a member's stage with what moves it
up, stage history and the funnel between two moments.

A changed model applies from the next evaluation: the hourly job runs one for a tenant whose
model changed after its last evaluation (or ``POST /lifecycle/evaluations`` runs one now)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import cast

from proto import tiers as t
from services.runtime.db import Pool
from services.runtime.errors import FuliError, NotFound, ValidationFailed
from services.runtime.pagination import decode_int_cursor, encode_cursor
from services.runtime.times import happened, sent_time
from services.tiers.lifecycle import rules, store
from services.tiers.tag_names import Stage
from services.tiers.times import tenant_day

log = logging.getLogger("fuli.tiers.lifecycle")

DEFAULT_MODEL = t.LifecycleModel()


class Lifecycle:
    """AIPL stages of a tenant's members."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def put_model(self, tenant_id: str, model: t.LifecycleModel) -> t.LifecycleModelView:
        rules.validate_model(model)
        async with self.pool.acquire() as conn, conn.transaction():
            updated_at = await store.put_model(conn, tenant_id, model)
        return _view(model, updated_at)

    async def model(self, tenant_id: str) -> t.LifecycleModelView:
        stored = await store.model(self.pool, tenant_id)
        return _view(DEFAULT_MODEL, None) if stored is None \
            else _view(stored.model, stored.updated_at)

    async def evaluate(self, tenant_id: str, at: datetime | None,
                       now: datetime) -> t.LifecycleEvaluation:
        """Every known member moved to their stage as of ``at`` (default now) under the
        tenant's model (the defaults when none is set). ``at`` may not be in the future nor
        before the tenant's last evaluation (409 ``evaluation_out_of_order``)."""
        moment = happened(None if at is None else sent_time(at, "at"), now, "at")
        stored = await store.model(self.pool, tenant_id)
        model = DEFAULT_MODEL if stored is None else stored.model
        async with self.pool.acquire() as conn, conn.transaction():
            computed = await store.compute(conn, tenant_id, model, moment)
        return t.LifecycleEvaluation(
            at=moment, day=computed.day, members=computed.members, changed=computed.changed,
            stages=t.StageCounts(**computed.stages),
            moves=[t.StageMove(from_stage=m["from_stage"], to_stage=m["to_stage"],
                               members=m["members"]) for m in computed.moves])

    async def evaluate_due(self, now: datetime | None = None) -> None:
        """The daily evaluation of every tenant with a model whose last evaluation was on an
        earlier local day or under an older model (the hourly job)."""
        now = now or datetime.now(UTC)
        for tenant_id in await store.due_tenants(self.pool, now):
            try:
                evaluation = await self.evaluate(tenant_id, None, now)
            except FuliError as exc:  # an evaluation later than now: the clock moved back
                log.warning("lifecycle evaluation refused", extra={"fields": {
                    "tenant": tenant_id, "code": exc.code}})
                continue
            log.info("lifecycle evaluated", extra={"fields": {
                "tenant": tenant_id, "members": evaluation.members,
                "changed": evaluation.changed}})

    async def member(self, tenant_id: str, member_id: str, now: datetime) -> t.MemberLifecycle:
        """The member's stage as of the last evaluation, the figures of that evaluation's
        window under its model (today's window under the model in force before any), and
        the ways up."""
        state = await store.member_stage(self.pool, tenant_id, member_id)
        if not state.known:
            raise NotFound(f"no member {member_id!r}", code="unknown_member")
        last = await store.last_evaluation(self.pool, tenant_id)
        if last is None:
            stored = await store.model(self.pool, tenant_id)
            model = DEFAULT_MODEL if stored is None else stored.model
            last_day = await tenant_day(self.pool, tenant_id, now)
        else:
            model, last_day = last.model, last.day
        row = await store.figures(self.pool, tenant_id, model, last_day, member_id)
        figures = rules.Figures(row.engagement_actions, row.purchases, row.last_purchase_day,
                                row.repurchase_gap_days)
        first_day, _ = rules.window(model, last_day)
        stage = cast(Stage | None, state.stage)
        standing = stage or rules.stage_of(figures, model)
        return t.MemberLifecycle(
            member_id=member_id, stage=stage, since=state.since,
            evaluation_day=None if last is None else last.day,
            figures=t.LifecycleFigures(
                first_day=first_day, last_day=last_day,
                engagement_actions=figures.engagement_actions, purchases=figures.purchases,
                last_purchase_day=figures.last_purchase_day,
                repurchase_gap_days=figures.repurchase_gap_days),
            next_stage=rules.next_stage(standing),
            needs=rules.needs(standing, figures, model, last_day))

    async def history(self, tenant_id: str, member_id: str, limit: int,
                      cursor: str | None) -> t.StageHistory:
        """The member's changes of stage, newest first."""
        before = decode_int_cursor(cursor, minimum=1) if cursor else None
        state = await store.member_stage(self.pool, tenant_id, member_id)
        if not state.known:
            raise NotFound(f"no member {member_id!r}", code="unknown_member")
        rows = await store.history(self.pool, tenant_id, member_id, before, limit + 1)
        page = rows[:limit]
        return t.StageHistory(
            member_id=member_id,
            items=[t.StageChange(from_stage=cast(Stage | None, r.from_stage),
                                 to_stage=cast(Stage, r.to_stage), at=r.at) for r in page],
            next_cursor=encode_cursor(page[-1].change_id) if len(rows) > limit else None)

    async def funnel(self, tenant_id: str, start: datetime, end: datetime) -> t.LifecycleFunnel:
        """Members with a stage at ``end``: their stages at ``start`` (``none`` before their
        first) and at ``end``, and the transition matrix."""
        if start > end:
            raise ValidationFailed("from is after to", field="from")
        rows = await store.funnel(self.pool, tenant_id, start, end)
        at_from, at_to, matrix = rules.funnel(
            (r.from_stage, r.to_stage, r.members) for r in rows)
        return t.LifecycleFunnel(from_=start, to=end, at_from=t.FunnelCounts(**at_from),
                                 at_to=t.FunnelCounts(**at_to), matrix=matrix)


def _view(model: t.LifecycleModel, updated_at: datetime | None) -> t.LifecycleModelView:
    return t.LifecycleModelView(
        engagement_actions=list(model.engagement_actions),
        interested_min_actions=model.interested_min_actions, window_days=model.window_days,
        loyal_min_purchases=model.loyal_min_purchases,
        repurchase_within_days=model.repurchase_within_days,
        is_default=updated_at is None, updated_at=updated_at)
