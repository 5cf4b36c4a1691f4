"""Value scores: the tenant's value model, members' scores under it and the KOC list."""

from __future__ import annotations

from datetime import date, datetime

from proto import tiers as t
from services.runtime.db import Db, Pool
from services.runtime.errors import Conflict, NotFound
from services.tiers import shared_store
from services.tiers.times import as_of, tenant_day
from services.tiers.value import rules, store


class Values:
    """Weighted value scores (consumption, content, interaction, social) and KOCs."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def put_model(self, tenant_id: str, model: t.ValueModel) -> t.ValueModel:
        rules.validate_value_model(model)
        await store.put_value_model(self.pool, tenant_id, model)
        return model

    async def model(self, tenant_id: str) -> t.ValueModel:
        model = await shared_store.value_model(self.pool, tenant_id)
        if model is None:
            raise NotFound("no value model yet", code="no_value_model")
        return model

    async def member_value(self, tenant_id: str, member_id: str, at: datetime | None,
                           now: datetime) -> t.MemberValue:
        """Scores over the model's window of local days ending on ``at``'s day."""
        model, last_day = await self._scoring(tenant_id, at, now)
        scores = rules.scores(await store.member_scores(self.pool, tenant_id, model, last_day,
                                                        member_id))
        return t.MemberValue(member_id=member_id, **scores,
                             high_value=scores["total"] >= model.high_value_line,
                             window_days=model.window_days, last_day=last_day)

    async def kocs(self, tenant_id: str, share: float, at: datetime | None,
                   now: datetime) -> t.KocList:
        """The top ``share`` of the tenant's members by total value (at least one when there
        are members; only members with a value above 0), ties by member id."""
        model, last_day = await self._scoring(tenant_id, at, now)
        population = await store.population(self.pool, tenant_id)
        count = rules.koc_count(share, population)
        top = await store.top_scores(self.pool, tenant_id, model, last_day, count) if count else []
        return t.KocList(share=share, population=population, count=len(top), last_day=last_day,
                         items=[t.Koc(rank=rank, member_id=row.member_id, **rules.scores(row))
                                for rank, row in enumerate(top, 1)])

    async def _scoring(self, tenant_id: str, at: datetime | None,
                       now: datetime) -> tuple[t.ValueModel, date]:
        """The model scores are taken under and the last local day of their window (``at``'s
        day); a time without an offset is refused before a missing model."""
        moment = as_of(at, now)
        model = await _require_model(self.pool, tenant_id)
        return model, await tenant_day(self.pool, tenant_id, moment)


async def _require_model(db: Db, tenant_id: str) -> t.ValueModel:
    model = await shared_store.value_model(db, tenant_id)
    if model is None:
        raise Conflict("set a value model first (PUT /tiers/v1/value-model)",
                       code="no_value_model")
    return model
