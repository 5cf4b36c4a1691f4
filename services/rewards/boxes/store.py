"""Blind boxes' SQL: boxes and prizes (with their audit), seeds, members' pity and daily draws,
draws, and members' age bands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec

from proto.rewards import BoxIn, BoxSummary, WeightedPrize
from services.rewards.boxes.rules import BoxMember, PlannedPick, commitment, new_seed
from services.runtime.db import (
    Conn,
    Db,
    as_struct,
    as_struct_or_none,
    as_structs,
    pop_prefixed,
    prefixed_columns,
)
from services.runtime.idempotency import Outcome
from services.runtime.tenants import time_zone_or_default


class BoxRow(msgspec.Struct, frozen=True):
    box_id: str
    name: str
    cost_points: int
    daily_limit_per_member: int | None
    pity_after: int | None
    pity_prize_ids: list[str] | None
    starts_at: datetime | None
    ends_at: datetime | None
    min_age: int | None
    enabled: bool


class PrizeRow(msgspec.Struct, frozen=True):
    prize_id: str
    name: str
    weight: int
    stock_left: int | None
    kind: str
    points: int | None
    sku: str | None


class Definition(msgspec.Struct, frozen=True):
    """The box row and what the PUT does not set: the live seed and the last change."""

    box: BoxRow
    seed_no: int | None
    updated_at: datetime


class PrizeDraws(msgspec.Struct, frozen=True):
    """Draws that stand (drawn or completed) of one prize since a time, by pity or by odds."""

    prize_id: str
    pity_applied: bool
    draws: int


class SeedRow(msgspec.Struct, frozen=True):
    seed_no: int
    seed: bytes
    commitment: str
    revealed_at: datetime | None


class DrawRow(msgspec.Struct, frozen=True):
    draw_id: str
    box_id: str
    member_id: str
    fingerprint: bytes
    paid_with: str
    cost_points: int
    hold_id: str
    status: str
    seed_no: int | None
    candidates: list[WeightedPrize] | None
    pity_applied: bool | None
    prize_id: str | None
    pity_before: int | None
    pity_after: int | None
    outcome_status: int | None
    outcome_body: bytes | None
    created_at: datetime


class DrawKey(msgspec.Struct, frozen=True):
    tenant_id: str
    draw_id: str
    created_at: datetime


class RevealedDraw(msgspec.Struct, frozen=True):
    draw_id: str
    candidates: list[WeightedPrize]
    prize_id: str
    seed: bytes
    commitment: str


class Profile(msgspec.Struct, frozen=True):
    age_band: str
    guardian_consent: bool


class DrawSetting(msgspec.Struct, frozen=True):
    """What a new draw is checked against before anything moves, read unlocked in one
    statement: the box, the member's age band and draws in it, the tenant's time zone and the
    prizes."""

    box: BoxRow
    profile: Profile | None
    member: BoxMember
    time_zone: str
    prizes: list[PrizeRow]


class DrawStart(msgspec.Struct, frozen=True):
    """A draw request's first read: the draw already made with its id, if any, and what a new
    one would be checked against (None for an unknown box)."""

    existing: DrawRow | None
    setting: DrawSetting | None


class PickSetting(msgspec.Struct, frozen=True):
    """What the pick reads in its transaction: the box, the tenant's time zone, the live seed
    (None before its first need), the member's row, locked (None if the member never drew from
    the box), and the prizes as the statement found them."""

    box: BoxRow
    time_zone: str
    seed: SeedRow | None
    member: BoxMember | None
    prizes: list[PrizeRow]


# --- boxes, prizes and seeds ---------------------------------------------------------------

async def put_box(conn: Conn, tenant_id: str, box_id: str, box: BoxIn,
                  key_id: str | None) -> None:
    """The box and its prizes as ``box`` says, and the definition in the audit log."""
    await conn.execute(
        "INSERT INTO rewards.boxes (tenant_id, box_id, name, cost_points, daily_limit_per_member,"
        " pity_after, pity_prize_ids, starts_at, ends_at, min_age, enabled)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (tenant_id, box_id) DO UPDATE SET name = EXCLUDED.name,"
        " cost_points = EXCLUDED.cost_points,"
        " daily_limit_per_member = EXCLUDED.daily_limit_per_member,"
        " pity_after = EXCLUDED.pity_after, pity_prize_ids = EXCLUDED.pity_prize_ids,"
        " starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,"
        " min_age = EXCLUDED.min_age, enabled = EXCLUDED.enabled, updated_at = now()",
        tenant_id, box_id, box.name, box.cost_points, box.daily_limit_per_member,
        box.pity.after_draws if box.pity else None, box.pity.prize_ids if box.pity else None,
        box.starts_at, box.ends_at, box.min_age, box.enabled)
    await conn.execute("DELETE FROM rewards.box_prizes WHERE tenant_id = $1 AND box_id = $2",
                       tenant_id, box_id)
    await conn.executemany(
        "INSERT INTO rewards.box_prizes (tenant_id, box_id, prize_id, position, name, weight,"
        " stock_left, kind, points, sku) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [(tenant_id, box_id, p.prize_id, i, p.name, p.weight, p.stock, p.kind, p.points, p.sku)
         for i, p in enumerate(box.prizes)])
    await conn.execute(
        "INSERT INTO rewards.box_audit (tenant_id, box_id, key_id, definition)"
        " VALUES ($1, $2, $3, $4)", tenant_id, box_id, key_id, msgspec.to_builtins(box))


BOX_COLUMNS = prefixed_columns(BoxRow, "b", "")


def _box_and_rest(row: asyncpg.Record | None) -> tuple[BoxRow, dict[str, Any]] | None:
    """A row of BOX_COLUMNS and more: the box (None if it was not found), and the other columns
    by name."""
    if row is None:
        return None
    fields = dict(row.items())
    box = pop_prefixed(BoxRow, fields, "")
    return None if box is None else (box, fields)


async def box(db: Db, tenant_id: str, box_id: str) -> BoxRow | None:
    return as_struct_or_none(BoxRow, await db.fetchrow(
        f"SELECT {BOX_COLUMNS} FROM rewards.boxes b WHERE b.tenant_id = $1 AND b.box_id = $2",
        tenant_id, box_id))


PRIZES_JSON = (
    "(SELECT coalesce(jsonb_agg(jsonb_build_object("
    "   'prize_id', z.prize_id, 'name', z.name, 'weight', z.weight,"
    "   'stock_left', z.stock_left, 'kind', z.kind, 'points', z.points, 'sku', z.sku)"
    "   ORDER BY z.position), '[]')"
    "  FROM rewards.box_prizes z WHERE z.tenant_id = b.tenant_id AND z.box_id = b.box_id"
    " ) AS prizes")


_EXISTING_DRAW = prefixed_columns(DrawRow, "d", "existing_")


class DrawRequest(NamedTuple):
    """What a draw request's first read is of."""

    tenant_id: str
    box_id: str
    member_id: str
    draw_id: str


async def draw_starts(db: Db, keys: Sequence[DrawRequest]) -> dict[DrawRequest, DrawStart]:
    """The first read of each draw request, in one statement."""
    rows = await db.fetch(
        "SELECT s.* FROM rewards.draw_starts($1, $2, $3, $4) s",
        [k.tenant_id for k in keys], [k.box_id for k in keys], [k.member_id for k in keys],
        [k.draw_id for k in keys])
    return {keys[row["n"] - 1]: _draw_start(dict(row.items())) for row in rows}


def _draw_start(fields: dict[str, Any]) -> DrawStart:
    existing = pop_prefixed(DrawRow, fields, "existing_")
    box = pop_prefixed(BoxRow, fields, "")
    if box is None:
        return DrawStart(existing=existing, setting=None)
    age_band, consent = fields["age_band"], fields["guardian_consent"]
    return DrawStart(existing=existing, setting=DrawSetting(
        box=box, profile=Profile(age_band, consent) if age_band is not None else None,
        member=BoxMember(fields["pity_counter"], fields["day"], fields["draws_that_day"]),
        time_zone=time_zone_or_default(fields["time_zone"]),
        prizes=msgspec.convert(fields["prizes"], list[PrizeRow])))


async def pick_setting(conn: Conn, tenant_id: str, box_id: str, member_id: str
                       ) -> PickSetting | None:
    """Locks the member's row for this box if there is one: it serialises the member's
    draws. The prizes are as the statement's snapshot has them, which may be from before it
    waited for the lock: the pick takes a prize's stock only if some is left then."""
    row = await conn.fetchrow(
        f"SELECT {BOX_COLUMNS}, t.time_zone, s.seed_no, s.seed, s.commitment,"
        f" m.pity_counter, m.day, m.draws_that_day, {PRIZES_JSON}"
        " FROM rewards.boxes b"
        " LEFT JOIN fuli.tenants t ON t.tenant_id = b.tenant_id"
        " LEFT JOIN rewards.box_seeds s ON s.tenant_id = b.tenant_id AND s.box_id = b.box_id"
        "  AND s.revealed_at IS NULL"
        " LEFT JOIN LATERAL (SELECT x.pity_counter, x.day, x.draws_that_day"
        "  FROM rewards.box_members x WHERE x.tenant_id = b.tenant_id AND x.box_id = b.box_id"
        "  AND x.member_id = $3 FOR UPDATE) m ON true"
        " WHERE b.tenant_id = $1 AND b.box_id = $2", tenant_id, box_id, member_id)
    found = _box_and_rest(row)
    if found is None:
        return None
    box, fields = found
    return PickSetting(
        box=box, time_zone=time_zone_or_default(fields["time_zone"]),
        seed=SeedRow(fields["seed_no"], fields["seed"], fields["commitment"], None)
        if fields["seed_no"] is not None else None,
        member=BoxMember(fields["pity_counter"], fields["day"], fields["draws_that_day"])
        if fields["pity_counter"] is not None else None,
        prizes=msgspec.convert(fields["prizes"], list[PrizeRow]))


async def boxes(db: Db, tenant_id: str, after: str | None, limit: int) -> list[BoxSummary]:
    """The tenant's boxes by id, after the box ``after``."""
    return as_structs(BoxSummary, await db.fetch(
        "SELECT b.box_id, b.name, b.cost_points, b.pity_after IS NOT NULL AS pity, b.enabled,"
        " b.updated_at,"
        " (SELECT count(*) FROM rewards.box_prizes p"
        "  WHERE p.tenant_id = b.tenant_id AND p.box_id = b.box_id) AS prizes,"
        " (SELECT s.seed_no FROM rewards.box_seeds s WHERE s.tenant_id = b.tenant_id"
        "  AND s.box_id = b.box_id AND s.revealed_at IS NULL) AS seed_no"
        " FROM rewards.boxes b WHERE b.tenant_id = $1 AND ($2::text IS NULL OR b.box_id > $2)"
        " ORDER BY b.box_id LIMIT $3", tenant_id, after, limit))


async def definition(db: Db, tenant_id: str, box_id: str) -> Definition | None:
    found = _box_and_rest(await db.fetchrow(
        f"SELECT {BOX_COLUMNS}, b.updated_at,"
        " (SELECT s.seed_no FROM rewards.box_seeds s WHERE s.tenant_id = b.tenant_id"
        "  AND s.box_id = b.box_id AND s.revealed_at IS NULL) AS seed_no"
        " FROM rewards.boxes b WHERE b.tenant_id = $1 AND b.box_id = $2", tenant_id, box_id))
    if found is None:
        return None
    box, fields = found
    return Definition(box=box, seed_no=fields["seed_no"], updated_at=fields["updated_at"])


async def prize_draws(db: Db, tenant_id: str, box_id: str, since: datetime
                      ) -> list[PrizeDraws]:
    """The box's draws made since ``since`` that stand, by prize and by whether pity chose."""
    return as_structs(PrizeDraws, await db.fetch(
        "SELECT prize_id, coalesce(pity_applied, false) AS pity_applied, count(*) AS draws"
        " FROM rewards.draws WHERE tenant_id = $1 AND box_id = $2 AND created_at >= $3"
        " AND status IN ('drawn', 'completed') AND prize_id IS NOT NULL"
        " GROUP BY 1, 2", tenant_id, box_id, since))


async def box_prizes(db: Db, tenant_id: str, box_id: str) -> list[PrizeRow]:
    return as_structs(PrizeRow, await db.fetch(
        "SELECT prize_id, name, weight, stock_left, kind, points, sku"
        " FROM rewards.box_prizes WHERE tenant_id = $1 AND box_id = $2 ORDER BY position",
        tenant_id, box_id))


async def take_prize(conn: Conn, tenant_id: str, box_id: str, prize_id: str) -> bool:
    """One of the prize's stock, locking its row to the commit; False if none is left (or the
    prize is gone from the box). A prize without a stock is always there to take."""
    return bool(await conn.fetchval(
        "UPDATE rewards.box_prizes SET stock_left = stock_left - 1"
        " WHERE tenant_id = $1 AND box_id = $2 AND prize_id = $3 AND stock_left > 0"
        " RETURNING true", tenant_id, box_id, prize_id))


async def change_prize_stock(conn: Conn, tenant_id: str, box_id: str, prize_id: str,
                             delta: int) -> None:
    await conn.execute(
        "UPDATE rewards.box_prizes SET stock_left = stock_left + $4"
        " WHERE tenant_id = $1 AND box_id = $2 AND prize_id = $3 AND stock_left IS NOT NULL",
        tenant_id, box_id, prize_id, delta)


LIVE_SEED = ("SELECT seed_no, seed, commitment, revealed_at FROM rewards.box_seeds"
             " WHERE tenant_id = $1 AND box_id = $2 AND revealed_at IS NULL")


async def live_seed(conn: Conn, tenant_id: str, box_id: str) -> SeedRow:
    """The box's live seed, made (and its commitment published) on first need."""
    row = await conn.fetchrow(LIVE_SEED, tenant_id, box_id)
    if row is not None:
        return as_struct(SeedRow, row)
    seed = new_seed()
    await conn.execute(
        "INSERT INTO rewards.box_seeds (tenant_id, box_id, seed_no, seed, commitment)"
        " SELECT $1, $2, coalesce(max(seed_no), 0) + 1, $3, $4 FROM rewards.box_seeds"
        " WHERE tenant_id = $1 AND box_id = $2 ON CONFLICT DO NOTHING",
        tenant_id, box_id, seed, commitment(seed))
    row = await conn.fetchrow(LIVE_SEED, tenant_id, box_id)
    assert row is not None
    return as_struct(SeedRow, row)


async def reveal_seed(conn: Conn, tenant_id: str, box_id: str) -> None:
    await conn.execute(
        "UPDATE rewards.box_seeds SET revealed_at = now()"
        " WHERE tenant_id = $1 AND box_id = $2 AND revealed_at IS NULL", tenant_id, box_id)


async def seed(db: Db, tenant_id: str, box_id: str, seed_no: int) -> SeedRow | None:
    return as_struct_or_none(SeedRow, await db.fetchrow(
        "SELECT seed_no, seed, commitment, revealed_at FROM rewards.box_seeds"
        " WHERE tenant_id = $1 AND box_id = $2 AND seed_no = $3", tenant_id, box_id, seed_no))


# --- members -------------------------------------------------------------------------------

async def box_member(conn: Conn, tenant_id: str, box_id: str, member_id: str) -> BoxMember:
    """The member's row for this box, created and locked: it serialises the member's draws.
    An upsert locks the row it finds as SELECT ... FOR UPDATE would, in one statement."""
    row = await conn.fetchrow(
        "INSERT INTO rewards.box_members AS x (tenant_id, box_id, member_id)"
        " VALUES ($1, $2, $3) ON CONFLICT (tenant_id, box_id, member_id)"
        " DO UPDATE SET pity_counter = x.pity_counter"
        " RETURNING x.pity_counter, x.day, x.draws_that_day", tenant_id, box_id, member_id)
    assert row is not None
    return as_struct(BoxMember, row)


async def pity_counter(db: Db, tenant_id: str, box_id: str, member_id: str) -> int:
    value = await db.fetchval(
        "SELECT pity_counter FROM rewards.box_members"
        " WHERE tenant_id = $1 AND box_id = $2 AND member_id = $3", tenant_id, box_id, member_id)
    return int(value or 0)


async def set_box_member(conn: Conn, tenant_id: str, box_id: str, member_id: str,
                         state: BoxMember) -> None:
    await conn.execute(
        "UPDATE rewards.box_members SET pity_counter = $4, day = $5, draws_that_day = $6"
        " WHERE tenant_id = $1 AND box_id = $2 AND member_id = $3",
        tenant_id, box_id, member_id, state.pity_counter, state.day, state.draws_that_day)


async def put_member_profile(db: Db, tenant_id: str, member_id: str, age_band: str,
                             guardian_consent: bool) -> None:
    await db.execute(
        "INSERT INTO rewards.member_profiles (tenant_id, member_id, age_band, guardian_consent)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, member_id) DO UPDATE"
        " SET age_band = EXCLUDED.age_band, guardian_consent = EXCLUDED.guardian_consent,"
        " updated_at = now()", tenant_id, member_id, age_band, guardian_consent)


# --- draws ---------------------------------------------------------------------------------

DRAW_COLUMNS = (
    "draw_id, box_id, member_id, fingerprint, paid_with, cost_points, hold_id, status,"
    " seed_no, candidates, pity_applied, prize_id, pity_before, pity_after, outcome_status,"
    " outcome_body, created_at")


async def draw(db: Db, tenant_id: str, draw_id: str) -> DrawRow | None:
    return as_struct_or_none(DrawRow, await db.fetchrow(
        f"SELECT {DRAW_COLUMNS} FROM rewards.draws WHERE tenant_id = $1 AND draw_id = $2",
        tenant_id, draw_id))


async def insert_draw(db: Db, tenant_id: str, draw_id: str, box_id: str, member_id: str,
                      fingerprint: bytes, paid_with: str, cost_points: int, hold_id: str,
                      status: str, outcome: Outcome | None) -> DrawRow | None:
    """The new draw; None if the id is taken."""
    return as_struct_or_none(DrawRow, await db.fetchrow(
        "INSERT INTO rewards.draws (tenant_id, draw_id, box_id, member_id, fingerprint,"
        " paid_with, cost_points, hold_id, status, outcome_status, outcome_body)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
        f" RETURNING {DRAW_COLUMNS}", tenant_id, draw_id, box_id, member_id, fingerprint,
        paid_with, cost_points, hold_id, status, outcome.status_code if outcome else None,
        outcome.body if outcome else None))


async def record_pick(conn: Conn, tenant_id: str, row: DrawRow, seed_no: int,
                      candidates: list[WeightedPrize], pity_applied: bool, prize_id: str,
                      pity_before: int, member: BoxMember) -> DrawRow | None:
    """pending -> drawn with what was picked, and the member's row set to ``member``, in one
    statement. None if another driver recorded the pick first (the caller rolls back)."""
    return as_struct_or_none(DrawRow, await conn.fetchrow(
        "WITH member AS ("
        "  UPDATE rewards.box_members SET pity_counter = $10, day = $11, draws_that_day = $12"
        "  WHERE tenant_id = $1 AND box_id = $3 AND member_id = $4)"
        " UPDATE rewards.draws SET status = 'drawn', seed_no = $5, candidates = $6,"
        " pity_applied = $7, prize_id = $8, pity_before = $9, pity_after = $10,"
        " updated_at = now() WHERE tenant_id = $1 AND draw_id = $2 AND status = 'pending'"
        f" RETURNING {DRAW_COLUMNS}", tenant_id, row.draw_id, row.box_id, row.member_id,
        seed_no, candidates, pity_applied, prize_id, pity_before, member.pity_counter,
        member.day, member.draws_that_day))


async def move_draw(db: Db, tenant_id: str, draw_id: str, from_status: str, to_status: str,
                    outcome: Outcome | None = None) -> DrawRow | None:
    """Compare-and-set of the status: the moved draw, or None if someone else moved it
    first."""
    return as_struct_or_none(DrawRow, await db.fetchrow(
        "UPDATE rewards.draws SET status = $4, updated_at = now(),"
        " outcome_status = coalesce($5, outcome_status), outcome_body = coalesce($6, outcome_body)"
        f" WHERE tenant_id = $1 AND draw_id = $2 AND status = $3 RETURNING {DRAW_COLUMNS}",
        tenant_id, draw_id, from_status, to_status, outcome.status_code if outcome else None,
        outcome.body if outcome else None))


async def forget_draw(db: Db, tenant_id: str, draw_id: str) -> bool:
    """Deletes a pending draw refused before anything moved, freeing its id; False if another
    driver moved it first."""
    return bool(await db.fetchval(
        "DELETE FROM rewards.draws WHERE tenant_id = $1 AND draw_id = $2 AND status = 'pending'"
        " RETURNING true", tenant_id, draw_id))


# --- draws made together (draw_groups) -----------------------------------------------------

class NewDraw(msgspec.Struct, frozen=True):
    draw_id: str
    member_id: str
    fingerprint: bytes
    cost_points: int
    hold_id: str


async def insert_draws(db: Db, tenant_id: str, box_id: str,
                       draws: Sequence[NewDraw]) -> list[DrawRow]:
    """New points-paid draws, pending; those whose id is taken are left out."""
    return as_structs(DrawRow, await db.fetch(
        "INSERT INTO rewards.draws (tenant_id, draw_id, box_id, member_id, fingerprint,"
        " paid_with, cost_points, hold_id, status)"
        " SELECT $1, t.draw_id, $2, t.member_id, t.fingerprint, 'points', t.cost_points,"
        " t.hold_id, 'pending' FROM unnest($3::text[], $4::text[], $5::bytea[], $6::bigint[],"
        " $7::text[]) AS t(draw_id, member_id, fingerprint, cost_points, hold_id)"
        f" ON CONFLICT DO NOTHING RETURNING {DRAW_COLUMNS}", tenant_id, box_id,
        [d.draw_id for d in draws], [d.member_id for d in draws],
        [d.fingerprint for d in draws], [d.cost_points for d in draws],
        [d.hold_id for d in draws]))


async def lock_box_members(conn: Conn, tenant_id: str, box_id: str,
                           member_ids: Sequence[str]) -> dict[str, BoxMember]:
    """The members' rows for this box, created and locked in member order, the order every
    statement locking several of them takes."""
    ordered = sorted(set(member_ids))
    await conn.execute(
        "INSERT INTO rewards.box_members (tenant_id, box_id, member_id)"
        " SELECT $1, $2, m FROM unnest($3::text[]) AS m ORDER BY m ON CONFLICT DO NOTHING",
        tenant_id, box_id, ordered)
    rows = await conn.fetch(
        "SELECT member_id, pity_counter, day, draws_that_day FROM rewards.box_members"
        " WHERE tenant_id = $1 AND box_id = $2 AND member_id = any($3::text[])"
        " ORDER BY member_id FOR UPDATE", tenant_id, box_id, ordered)
    return {row["member_id"]: BoxMember(row["pity_counter"], row["day"], row["draws_that_day"])
            for row in rows}


async def lock_stocked_prizes(conn: Conn, tenant_id: str, box_id: str) -> dict[str, int]:
    """Locks the box's prizes that have some stock left, to the commit, and answers what is
    left of each; one with none left is not locked, so groups of draws do not take turns on
    it (a draw given back may return one of it meanwhile: that one waits for a later pick)."""
    return {row["prize_id"]: row["stock_left"] for row in await conn.fetch(
        "SELECT prize_id, stock_left FROM rewards.box_prizes WHERE tenant_id = $1"
        " AND box_id = $2 AND stock_left > 0 ORDER BY prize_id FOR UPDATE", tenant_id, box_id)}


async def lock_pending_draws(conn: Conn, tenant_id: str, draw_ids: Sequence[str]) -> set[str]:
    """Of these draws, those still pending, locked; one another driver is moving is left
    out rather than waited for."""
    return {row["draw_id"] for row in await conn.fetch(
        "SELECT draw_id FROM rewards.draws WHERE tenant_id = $1 AND draw_id = any($2::text[])"
        " AND status = 'pending' FOR UPDATE SKIP LOCKED", tenant_id, list(draw_ids))}


async def take_prizes(conn: Conn, tenant_id: str, box_id: str, taken: dict[str, int]) -> bool:
    """Takes ``taken`` of each prize's stock; False (nothing taken) if one has too few left."""
    if not taken:
        return True
    changed = await conn.fetchval(
        "WITH taken AS (UPDATE rewards.box_prizes p SET stock_left = p.stock_left - t.n"
        " FROM unnest($3::text[], $4::int[]) AS t(prize_id, n)"
        " WHERE p.tenant_id = $1 AND p.box_id = $2 AND p.prize_id = t.prize_id"
        " AND p.stock_left >= t.n RETURNING 1) SELECT count(*) FROM taken",
        tenant_id, box_id, list(taken), list(taken.values()))
    return bool(changed == len(taken))


async def record_picks(conn: Conn, tenant_id: str, box_id: str, seed_no: int,
                       picks: Sequence[PlannedPick],
                       members: dict[str, BoxMember]) -> list[DrawRow]:
    """pending -> drawn for each pick, and the members' rows set to ``members``, in one
    statement; a draw another driver moved first is left out."""
    return as_structs(DrawRow, await conn.fetch(
        "WITH members AS ("
        "  UPDATE rewards.box_members x SET pity_counter = m.pity_counter, day = m.day,"
        "  draws_that_day = m.draws_that_day"
        "  FROM unnest($4::text[], $5::int[], $6::date[], $7::int[])"
        "   AS m(member_id, pity_counter, day, draws_that_day)"
        "  WHERE x.tenant_id = $1 AND x.box_id = $2 AND x.member_id = m.member_id"
        # Said as well as joined: a plan made while the table was small (and kept by the
        # connection) then still looks its rows up by their whole key, not the box's all.
        "  AND x.member_id = any($4::text[]))"
        " UPDATE rewards.draws d SET status = 'drawn', seed_no = $3,"
        " candidates = t.new_candidates::jsonb, pity_applied = t.new_pity_applied,"
        " prize_id = t.new_prize_id, pity_before = t.new_pity_before,"
        " pity_after = t.new_pity_after, updated_at = now()"
        " FROM unnest($8::text[], $9::text[], $10::bool[], $11::text[], $12::int[], $13::int[])"
        "  AS t(new_draw_id, new_candidates, new_pity_applied, new_prize_id, new_pity_before,"
        "  new_pity_after)"
        " WHERE d.tenant_id = $1 AND d.draw_id = t.new_draw_id AND d.draw_id = any($8::text[])"
        " AND d.status = 'pending'"
        f" RETURNING {DRAW_COLUMNS}", tenant_id, box_id, seed_no,
        list(members), [m.pity_counter for m in members.values()],
        [m.day for m in members.values()], [m.draws_that_day for m in members.values()],
        [p.draw_id for p in picks], [msgspec.json.encode(p.options).decode() for p in picks],
        [p.pity_applied for p in picks], [p.prize_id for p in picks],
        [p.pity_before for p in picks], [p.member.pity_counter for p in picks]))


async def complete_draws(db: Db, tenant_id: str,
                         answers: Sequence[tuple[str, Outcome]]) -> set[str]:
    """drawn -> completed with each draw's answer, in one statement: the ids completed (the
    others were moved first)."""
    if not answers:
        return set()
    return {row["draw_id"] for row in await db.fetch(
        "UPDATE rewards.draws d SET status = 'completed', updated_at = now(),"
        " outcome_status = t.status, outcome_body = t.body"
        " FROM unnest($2::text[], $3::int[], $4::bytea[]) AS t(draw_id, status, body)"
        " WHERE d.tenant_id = $1 AND d.draw_id = t.draw_id AND d.draw_id = any($2::text[])"
        " AND d.status = 'drawn'"
        " RETURNING d.draw_id", tenant_id, [draw_id for draw_id, _ in answers],
        [outcome.status_code for _, outcome in answers],
        [outcome.body for _, outcome in answers])}


async def forget_draws(db: Db, tenant_id: str, draw_ids: Sequence[str]) -> set[str]:
    """``forget_draw`` of each: the ids deleted (the others were moved first)."""
    return {row["draw_id"] for row in await db.fetch(
        "DELETE FROM rewards.draws WHERE tenant_id = $1 AND draw_id = any($2::text[])"
        " AND status = 'pending' RETURNING draw_id", tenant_id, list(draw_ids))}


async def revealed_draws(db: Db, tenant_id: str, box_id: str) -> list[RevealedDraw]:
    return as_structs(RevealedDraw, await db.fetch(
        "SELECT d.draw_id, d.candidates, d.prize_id, s.seed, s.commitment FROM rewards.draws d"
        " JOIN rewards.box_seeds s ON s.tenant_id = d.tenant_id AND s.box_id = d.box_id"
        "  AND s.seed_no = d.seed_no"
        " WHERE d.tenant_id = $1 AND d.box_id = $2 AND s.revealed_at IS NOT NULL"
        " AND d.prize_id IS NOT NULL ORDER BY d.draw_id", tenant_id, box_id))


async def unfinished_draws(db: Db, older_than: datetime, limit: int) -> list[DrawKey]:
    return as_structs(DrawKey, await db.fetch(
        "SELECT tenant_id, draw_id, created_at FROM rewards.draws"
        " WHERE status IN ('pending', 'drawn', 'releasing') AND updated_at < $1"
        " ORDER BY updated_at LIMIT $2", older_than, limit))
