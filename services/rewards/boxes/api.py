"""HTTP handlers of blind boxes: definition, published odds, draws, proofs, tickets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from proto import rewards as r
from services.rewards import draws, store
from services.rewards.boxes import Drawer
from services.runtime.app import json_response
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep, ResourcesDep
from services.runtime.errors import NotFound, ValidationFailed
from services.runtime.idempotency import run_once

WRITE = {"rate_group": "write"}


def validate_box(box: r.BoxIn) -> None:
    ids = [p.prize_id for p in box.prizes]
    if len(set(ids)) != len(ids):
        raise ValidationFailed("prize ids must be unique", field="prizes")
    for i, prize in enumerate(box.prizes):
        if (prize.kind == "points") != (prize.points is not None):
            raise ValidationFailed("points prizes, and only they, carry points",
                                   field=f"prizes[{i}].points")
        if (prize.kind in ("perk", "coupon")) != (prize.sku is not None):
            raise ValidationFailed("perk and coupon prizes, and only they, carry a sku",
                                   field=f"prizes[{i}].sku")
    if box.pity and not set(box.pity.prize_ids) <= set(ids):
        raise ValidationFailed("pity prize_ids must be prizes of the box", field="pity.prize_ids")
    if box.starts_at and box.ends_at and box.ends_at <= box.starts_at:
        raise ValidationFailed("ends_at must be after starts_at", field="ends_at")


class BoxesController(Controller):
    tags = ["blind boxes"]

    @put("/boxes/{box_id:str}", guards=[allow("operator")])
    async def put_box(self, box_id: PathId, data: JSONBody[r.BoxIn], principal: PrincipalDep,
                      resources: ResourcesDep) -> r.Odds:
        """Define a box. Every change of its prizes or weights is kept in the audit log."""
        validate_box(data)
        async with resources.pool.acquire() as conn, conn.transaction():
            await store.put_box(conn, principal.tenant_id, box_id, data, principal.key_id,
                                msgspec.to_builtins(data))
            await store.live_seed(conn, principal.tenant_id, box_id)
        return await odds_of(resources, principal.tenant_id, box_id, None)

    @get("/boxes/{box_id:str}/odds", guards=[allow("operator", "ingest", member=True)])
    async def odds(self, box_id: PathId, principal: PrincipalDep,
                   resources: ResourcesDep) -> r.Odds:
        """The exact current odds (the numbers the draw uses), stock, pity and the commitment
        to the seed in use."""
        return await odds_of(resources, principal.tenant_id, box_id,
                             principal.member_id if principal.is_member else None)

    @post("/boxes/{box_id:str}/draws", guards=[allow("ingest", member=True)], opt=WRITE,
          status_code=201)
    async def draw(self, box_id: PathId, data: JSONBody[r.DrawIn], principal: PrincipalDep,
                   drawer: NamedDependency[Drawer]) -> Response[bytes]:
        """Draw once, paid with a ticket or points; idempotent by ``draw_id``."""
        principal.require_member(data.member_id)
        outcome = await drawer.draw(principal.tenant_id, box_id, data,
                                             datetime.now(UTC))
        return json_response(outcome.body, outcome.status_code, replayed=outcome.replayed)

    @get("/boxes/{box_id:str}/draws/{draw_id:str}/proof",
         guards=[allow("operator", "ingest", member=True)])
    async def proof(self, box_id: PathId, draw_id: PathId, principal: PrincipalDep,
                    resources: ResourcesDep) -> r.DrawProof:
        """What is needed to verify a draw; the seed appears once it has been rotated out."""
        row = await store.draw(resources.pool, principal.tenant_id, draw_id)
        if row is None or row["box_id"] != box_id or row["prize_id"] is None:
            raise NotFound(f"no drawn draw {draw_id!r} in box {box_id!r}", code="unknown_draw")
        seed = next(s for s in await store.seeds(resources.pool, principal.tenant_id, box_id)
                    if s["seed_no"] == row["seed_no"])
        return r.DrawProof(
            draw_id=draw_id, box_id=box_id, seed_no=row["seed_no"],
            commitment=seed["commitment"],
            seed=bytes(seed["seed"]).hex() if seed["revealed_at"] else None,
            candidates=[r.WeightedPrize(**c) for c in row["candidates"]],
            pity_applied=row["pity_applied"], prize_id=row["prize_id"])

    @post("/boxes/{box_id:str}/seed/rotate", guards=[allow("operator")], status_code=200)
    async def rotate(self, box_id: PathId, principal: PrincipalDep,
                     resources: ResourcesDep) -> r.SeedRotated:
        """Reveal the seed in use and publish the commitment of a new one."""
        async with resources.pool.acquire() as conn, conn.transaction():
            if await store.box(conn, principal.tenant_id, box_id) is None:
                raise NotFound(f"no box {box_id!r}", code="unknown_box")
            old = await store.live_seed(conn, principal.tenant_id, box_id)
            await store.reveal_seed(conn, principal.tenant_id, box_id)
            new = await store.live_seed(conn, principal.tenant_id, box_id)
        return r.SeedRotated(box_id=box_id, revealed_seed_no=old["seed_no"],
                             revealed_seed=bytes(old["seed"]).hex(), seed_no=new["seed_no"],
                             commitment=new["commitment"])

    @post("/tickets", guards=[allow("ingest")], opt=WRITE, status_code=201)
    async def tickets(self, data: JSONBody[r.TicketsIn], principal: PrincipalDep,
                      resources: ResourcesDep) -> Response[bytes]:
        """Give a member draw tickets for a box (guide followed, survey done, group joined)."""
        async def effect(tx: Any) -> tuple[int, r.Tickets]:
            if await store.box(tx, principal.tenant_id, data.box_id) is None:
                raise NotFound(f"no box {data.box_id!r}", code="unknown_box")
            await store.add_tickets(tx, principal.tenant_id, data.box_id, [data.member_id],
                                    data.count)
            return 201, r.Tickets(ticket_grant_id=data.ticket_grant_id, member_id=data.member_id,
                                  box_id=data.box_id, count=data.count)

        async with resources.pool.acquire() as conn:
            outcome = await run_once(conn, tenant_id=principal.tenant_id, scope="rewards.tickets",
                                     key=data.ticket_grant_id, request=data, effect=effect)
        return json_response(outcome.body, outcome.status_code, replayed=outcome.replayed)

    @put("/members/{member_id:str}/eligibility", guards=[allow("ingest")])
    async def eligibility(self, member_id: PathId, data: JSONBody[r.EligibilityIn],
                          principal: PrincipalDep, resources: ResourcesDep) -> r.EligibilityIn:
        """The member's age band and guardian consent (a band, never a birth date)."""
        async with resources.pool.acquire() as conn:
            await store.put_member_profile(conn, principal.tenant_id, member_id, data.age_band,
                                           data.guardian_consent)
        return data


async def odds_of(resources: Any, tenant_id: str, box_id: str,
                  member_id: str | None) -> r.Odds:
    box = await store.box(resources.pool, tenant_id, box_id)
    if box is None:
        raise NotFound(f"no box {box_id!r}", code="unknown_box", box_id=box_id)
    rows = await store.box_prizes(resources.pool, tenant_id, box_id)
    chances = draws.probabilities([draws.Prize(p["prize_id"], p["weight"], p["stock_left"])
                                   for p in rows])
    async with resources.pool.acquire() as conn:
        seed = await store.live_seed(conn, tenant_id, box_id)
    pity = r.PityRule(after_draws=box["pity_after"], prize_ids=list(box["pity_prize_ids"])) \
        if box["pity_after"] else None
    return r.Odds(
        box_id=box_id, cost_points=box["cost_points"],
        prizes=[r.PrizeOdds(prize_id=p["prize_id"], name=p["name"], kind=p["kind"],
                            probability=float(chances[p["prize_id"]]),
                            stock_left=p["stock_left"]) for p in rows],
        pity=pity, seed_no=seed["seed_no"], commitment=seed["commitment"],
        pity_counter=await store.pity_counter(resources.pool, tenant_id, box_id, member_id)
        if member_id else None)
