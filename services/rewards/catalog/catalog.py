"""The perk catalog: perks and their stock, coupon-code pools, and what each member may redeem
(their tier, as the tiers service announces it, and their allowance)."""

from __future__ import annotations

from datetime import datetime

from proto.events import Envelope, tier_changes
from proto.rewards import CodesAdded, CodesIn, Eligibility, Perk, PerkIn, PerkList
from services.rewards.catalog import rules, store
from services.rewards.catalog.stock import StockMirror
from services.rewards.catalog.store import PerkRow
from services.rewards.member_tiers import member_tier, set_member_tiers
from services.rewards.wallet import wallet
from services.rewards.windows import check_window
from services.runtime.bus import consume
from services.runtime.db import Conn, Pool
from services.runtime.errors import ValidationFailed

TIER_CONSUMER = "rewards.apply_tier_changed"


def perk_rules(perk: PerkRow) -> rules.PerkRules:
    return rules.PerkRules(enabled=perk.enabled, starts_at=perk.starts_at, ends_at=perk.ends_at,
                           tiers=perk.tiers, per_member_limit=perk.per_member_limit,
                           stock_left=perk.stock_left)


def perk_view(row: PerkRow, eligibility: Eligibility | None = None) -> Perk:
    return Perk(sku=row.sku, name=row.name, description=row.description,
                cost_points=row.cost_points, stock=row.stock_left,
                per_member_limit=row.per_member_limit, tiers=row.tiers,
                starts_at=row.starts_at, ends_at=row.ends_at, fulfilment=row.fulfilment,
                coupon_valid_days=row.coupon_valid_days, enabled=row.enabled,
                codes_available=row.codes_available if row.fulfilment == "code" else None,
                eligibility=eligibility)


class Catalog:
    def __init__(self, pool: Pool, stock: StockMirror) -> None:
        self.pool = pool
        self.stock = stock

    async def put_perk(self, tenant_id: str, sku: str, body: PerkIn) -> Perk:
        """Create or replace a perk; its stock is what is left to redeem from now on."""
        check_window(body.starts_at, body.ends_at)
        async with self.pool.acquire() as conn:
            row = await store.put_perk(conn, tenant_id, sku, body)
        await self.stock.publish(tenant_id, sku, row)
        return perk_view(row)

    async def perks(self, tenant_id: str, member_id: str | None, *, for_member: bool,
                    now: datetime) -> PerkList:
        """Every perk; with ``member_id``, whether that member may redeem each one. A member
        (``for_member``) does not see disabled perks."""
        async with self.pool.acquire() as conn:
            rows = await store.perks(conn, tenant_id)
            if member_id is None:
                return PerkList(items=[perk_view(row) for row in rows])
            tier = await member_tier(conn, tenant_id, member_id)
            used = await wallet.allowance_used(conn, tenant_id, member_id)
        items = []
        for row in rows:
            eligibility = rules.eligibility(perk_rules(row), tier, used.get(row.sku, 0), now)
            if for_member and not row.enabled:
                continue
            items.append(perk_view(row, eligibility))
        return PerkList(items=items)

    async def add_codes(self, tenant_id: str, sku: str, body: CodesIn) -> CodesAdded:
        """Codes already in the pool (or twice in ``body``) are skipped."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await store.perk(conn, tenant_id, sku) is None:
                raise ValidationFailed(f"no perk {sku!r}", code="unknown_sku", field="sku")
            unique = list(dict.fromkeys(body.codes))
            added = await store.add_codes(conn, tenant_id, sku, unique)
            available = await store.free_codes(conn, tenant_id, sku)
        return CodesAdded(sku=sku, added=added, duplicates=len(body.codes) - added,
                          available=available)

    async def apply_tier_changes(self, bodies: str | list[str]) -> None:
        """Members' tiers as the tiers service announces them (``TierChanged`` and
        ``TierChanges`` envelopes)."""
        await consume(self.pool, TIER_CONSUMER, bodies, record_tier)

    async def sync_stock(self) -> int:
        """Republish every perk's stock to Redis (after a flush, or missed writes)."""
        return await self.stock.sync_all(self.pool)


async def record_tier(conn: Conn, envelope: Envelope) -> None:
    changed = tier_changes(envelope.data)
    await set_member_tiers(conn, envelope.tenant_id, changed.member_ids, changed.tier,
                           changed.changed_at)
