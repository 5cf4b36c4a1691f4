"""The invariants a scenario must keep, read from the stores once the system has settled.

Answers: every operation got a definite answer; no 5xx but 503 with Retry-After.
Money: `fuli ledger check`; every acknowledged effect is in the ledger (or the rewards tables)
exactly once and nothing refused was applied; no transfer applied twice; no perk, prize or pool
share handed out beyond its stock.
Derived state (each must equal its source): the tiers service's points available, points earned,
spend, activity and tier of each member against the points ledger; the earn multiplier in the
ledger and the rewards service's copy of the tier against the tier; team-buy scores (PostgreSQL)
against the purchases in the ledger; the leaderboard (Redis) against the scores.

The suite reads every schema directly: it is the referee, not a service."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from tests.faults import traffic as t
from tests.faults.stack import FaultStack

EXAMPLES = 3


@dataclass(frozen=True)
class Check:
    name: str
    held: bool
    detail: str = ""
    derived: bool = False  # derived state: what the settling waits for


class Problems:
    """Problems of one check, counted by kind, with a few examples each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < EXAMPLES:
            self.examples[kind].append(example)

    def check(self, name: str, *, derived: bool = False, context: str = "") -> Check:
        if not self.counts:
            return Check(name, True, context, derived)
        parts = [f"{kind}: {n} (e.g. {'; '.join(self.examples[kind])})"
                 for kind, n in self.counts.most_common()]
        return Check(name, False, " | ".join(([context] if context else []) + parts), derived)


def acked(op: t.Op) -> bool:
    return op.status is not None and 200 <= op.status < 300


def refused(op: t.Op) -> bool:
    return op.status is not None and 400 <= op.status < 500


def by_kind(ops: Iterable[t.Op], *kinds: str) -> list[t.Op]:
    return [op for op in ops if op.kind in kinds]


async def _transfer_counts(conn: asyncpg.Connection, tenant: str, kinds: list[str],
                           refs: list[str]) -> dict[tuple[str, str], tuple[int, int]]:
    """(kind, ref) -> (transfers, points) of the given kinds and refs."""
    rows = await conn.fetch(
        "SELECT kind, ref, count(*) AS n, sum(amount) AS points FROM points.transfers"
        " WHERE tenant_id = $1 AND kind = any($2::text[]) AND ref = any($3::text[])"
        " GROUP BY kind, ref", tenant, kinds, refs)
    return {(r["kind"], r["ref"]): (r["n"], int(r["points"])) for r in rows}


# --- answers ---------------------------------------------------------------------------------

def answer_checks(stats: t.Stats, ops: list[t.Op]) -> list[Check]:
    unresolved = [f"{op.kind} {op.key}: {op.body}" for op in ops if op.status is None]
    checks = [Check("every operation answered", not unresolved,
                    f"{len(unresolved)} of {stats.operations} operations got no definite "
                    f"answer (e.g. {'; '.join(unresolved[:EXAMPLES])})" if unresolved else "")]
    others = {code: n for code, n in stats.server_errors.items() if code != 503}
    bare_503 = stats.server_errors.get(503, 0) - stats.with_retry_after
    detail = [f"{n} x {code}" for code, n in sorted(others.items())]
    if bare_503:
        detail.append(f"{bare_503} x 503 without Retry-After")
    checks.append(Check("no 5xx but 503 + Retry-After", not detail,
                        " | ".join(detail + stats.error_samples[:EXAMPLES])))
    return checks


# --- money -----------------------------------------------------------------------------------

async def ledger_check(stack: FaultStack, tenant: str) -> Check:
    result = await asyncio.to_thread(stack.fuli, "ledger", "check", "--tenant", tenant)
    output = (result.stdout.strip() + "\n" + result.stderr.strip()).strip()
    return Check("fuli ledger check", result.returncode == 0,
                 "" if result.returncode == 0 else " | ".join(output.splitlines()[-6:]))


async def acknowledged_once(conn: asyncpg.Connection, world: t.World,
                            ops: list[t.Op]) -> Check:
    """Each acknowledged operation took effect exactly once; a refused one not at all."""
    tenant = world.tenant
    problems = Problems()

    events = by_kind(ops, "event")
    keys = [op.key for op in events]
    stored = {r["event_id"]: r for r in await conn.fetch(
        "SELECT event_id, member_id, points FROM points.events"
        " WHERE tenant_id = $1 AND event_id = any($2::text[])", tenant, keys)}
    earned = await _transfer_counts(conn, tenant, ["earn"], keys)
    for op in events:
        row = stored.get(op.key)
        n, points = earned.get(("earn", op.key), (0, 0))
        if acked(op):
            answered = int(op.body["points"])
            if row is None:
                problems.add("acknowledged event missing", op.key)
            elif row["points"] != answered or n != (1 if answered else 0) or points != answered:
                problems.add("event not applied as answered",
                             f"{op.key}: answered {answered}, stored {row['points']}, "
                             f"{n} earn transfer(s) of {points}")
        elif refused(op) and (row is not None or n):
            problems.add("refused event applied", f"{op.key} ({op.status})")

    debits = by_kind(ops, "debit")
    keys = [op.key for op in debits]
    stored = {r["debit_id"]: r for r in await conn.fetch(
        "SELECT debit_id, points FROM points.debits WHERE tenant_id = $1"
        " AND debit_id = any($2::text[])", tenant, keys)}
    spent = await _transfer_counts(conn, tenant, ["debit"], keys)
    for op in debits:
        n, points = spent.get(("debit", op.key), (0, 0))
        if acked(op):
            if op.key not in stored or n != 1 or points != int(op.body["points"]):
                problems.add("acknowledged debit not applied once",
                             f"{op.key}: {n} debit transfer(s) of {points}")
        elif refused(op) and (op.key in stored or n):
            problems.add("refused debit applied", f"{op.key} ({op.status})")

    holds = by_kind(ops, "hold", "capture", "void")
    keys = list({op.key for op in holds})
    status = {r["hold_id"]: r["status"] for r in await conn.fetch(
        "SELECT hold_id, status FROM points.holds WHERE tenant_id = $1"
        " AND hold_id = any($2::text[])", tenant, keys)}
    moved = await _transfer_counts(conn, tenant, ["hold", "capture", "void"], keys)
    expected_status = {"capture": "captured", "void": "voided"}
    for op in holds:
        n, _ = moved.get((op.kind, op.key), (0, 0))
        if acked(op):
            if n != 1:
                problems.add(f"acknowledged {op.kind} not applied once",
                             f"{op.key}: {n} {op.kind} transfer(s)")
            elif op.kind in expected_status and status.get(op.key) != expected_status[op.kind]:
                problems.add(f"acknowledged {op.kind} not recorded",
                             f"{op.key}: hold is {status.get(op.key)}")
        elif refused(op) and n:
            problems.add(f"refused {op.kind} applied", f"{op.key} ({op.status})")
    for key in keys:
        if moved.get(("capture", key)) and moved.get(("void", key)):
            problems.add("hold both captured and voided", key)

    redemptions = by_kind(ops, "redeem")
    rows = {r["redemption_id"]: r for r in await conn.fetch(
        "SELECT redemption_id, status, hold_id, points FROM rewards.redemptions"
        " WHERE tenant_id = $1 AND redemption_id = any($2::text[])",
        tenant, [op.key for op in redemptions])}
    captures = await _transfer_counts(conn, tenant, ["capture"],
                                      [r["hold_id"] for r in rows.values()])
    for op in redemptions:
        row = rows.get(op.key)
        n, points = captures.get(("capture", row["hold_id"]), (0, 0)) if row else (0, 0)
        if acked(op):
            if row is None or row["status"] not in ("completed", "pending_fulfilment"):
                problems.add("acknowledged redemption not completed",
                             f"{op.key}: {row['status'] if row else 'missing'}")
            elif n != 1 or points != row["points"]:
                problems.add("acknowledged redemption not paid once",
                             f"{op.key}: {n} capture(s) of {points}")
        elif refused(op) and (n or (row is not None and row["status"] != "failed")):
            problems.add("refused redemption applied",
                         f"{op.key} ({op.status}): {row['status'] if row else '-'}, "
                         f"{n} capture(s)")

    draws = by_kind(ops, "draw")
    rows = {r["draw_id"]: r for r in await conn.fetch(
        "SELECT draw_id, status, hold_id, prize_id, cost_points FROM rewards.draws"
        " WHERE tenant_id = $1 AND draw_id = any($2::text[])", tenant, [op.key for op in draws])}
    paid = await _transfer_counts(conn, tenant, ["capture", "grant"],
                                  [r["hold_id"] for r in rows.values()])
    for op in draws:
        row = rows.get(op.key)
        charged, _ = paid.get(("capture", row["hold_id"]), (0, 0)) if row else (0, 0)
        won, won_points = paid.get(("grant", row["hold_id"]), (0, 0)) if row else (0, 0)
        if acked(op):
            prize = op.body["prize"]
            prize_points = int(prize.get("points") or 0) if prize["kind"] == "points" else 0
            if row is None or row["status"] != "completed" \
                    or row["prize_id"] != prize["prize_id"]:
                problems.add("acknowledged draw not recorded",
                             f"{op.key}: {row['status'] if row else 'missing'}")
            elif charged != (1 if row["cost_points"] else 0) \
                    or won != (1 if prize_points else 0) or won_points != prize_points:
                problems.add("acknowledged draw not paid once",
                             f"{op.key}: {charged} capture(s), {won} prize grant(s) of "
                             f"{won_points} for {prize_points}")
        elif refused(op) and (charged or won):
            problems.add("refused draw applied", f"{op.key} ({op.status})")

    opens = by_kind(ops, "open")
    rows = {r["open_id"]: r for r in await conn.fetch(
        "SELECT open_id, member_id, status, points FROM rewards.pool_opens"
        " WHERE tenant_id = $1 AND open_id = any($2::text[])", tenant, [op.key for op in opens])}
    for op in opens:
        row = rows.get(op.key)
        if acked(op):
            if row is None or row["status"] != "paid" or row["points"] != op.body["points"]:
                problems.add("acknowledged open not paid",
                             f"{op.key}: {row['status'] if row else 'missing'}")
        elif refused(op) and row is not None and row["status"] == "paid":
            problems.add("refused open paid", f"{op.key} ({op.status})")
    # What the pool's records say was paid is what the members received.
    recorded = {r["member_id"]: int(r["points"]) for r in await conn.fetch(
        "SELECT member_id, sum(points) AS points FROM rewards.pool_opens"
        " WHERE tenant_id = $1 AND pool_id = $2 AND status = 'paid' GROUP BY member_id",
        tenant, world.pool_id)}
    received = {r["member_id"]: int(r["points"]) for r in await conn.fetch(
        "SELECT member_id, sum(amount) AS points FROM points.transfers"
        " WHERE tenant_id = $1 AND kind = 'grant' AND ref LIKE 'poolshare:%'"
        " GROUP BY member_id", tenant)}
    for member in recorded.keys() | received.keys():
        if recorded.get(member, 0) != received.get(member, 0):
            problems.add("pool shares paid differ from the opens",
                         f"{member}: opens {recorded.get(member, 0)}, "
                         f"received {received.get(member, 0)}")

    answered = sum(1 for op in ops if op.status is not None)
    return problems.check("acknowledged effects exactly once",
                          context="" if not problems.counts else f"{answered} answered ops")


async def no_double_transfers(conn: asyncpg.Connection, tenant: str) -> Check:
    """No member got the same kind of transfer twice for one id (a replayed effect)."""
    rows = await conn.fetch(
        "SELECT member_id, kind, ref, count(*) AS n FROM points.transfers"
        " WHERE tenant_id = $1 AND kind <> 'expiry' GROUP BY member_id, kind, ref"
        " HAVING count(*) > 1 ORDER BY n DESC", tenant)
    problems = Problems()
    for r in rows:
        problems.add("transfer applied twice", f"{r['member_id']} {r['kind']} {r['ref']} x{r['n']}")
    return problems.check("no transfer applied twice")


async def no_oversell(conn: asyncpg.Connection, world: t.World, ops: list[t.Op]) -> Check:
    tenant = world.tenant
    problems = Problems()
    notes = []

    stock_left = await conn.fetchval(
        "SELECT stock_left FROM rewards.perks WHERE tenant_id = $1 AND sku = $2",
        tenant, world.sku)
    taken = await conn.fetchrow(
        "SELECT coalesce(sum(quantity) FILTER (WHERE status IN"
        "  ('completed', 'pending_fulfilment')), 0) AS sold,"
        # Only a reserved redemption holds stock: it is taken on the way to 'reserved' and
        # put back on the way from it to 'releasing', in the same transactions.
        " coalesce(sum(quantity) FILTER (WHERE status = 'reserved'), 0) AS unfinished"
        " FROM rewards.redemptions WHERE tenant_id = $1 AND sku = $2", tenant, world.sku)
    acked_redemptions = sum(1 for op in by_kind(ops, "redeem") if acked(op))
    notes.append(f"perk: {taken['sold']} sold, {taken['unfinished']} unfinished, "
                 f"{stock_left} left of {t.PERK_STOCK}")
    if taken["sold"] > t.PERK_STOCK or acked_redemptions > t.PERK_STOCK:
        problems.add("perk oversold", f"{taken['sold']} sold, {acked_redemptions} acknowledged, "
                                      f"stock {t.PERK_STOCK}")
    if taken["sold"] + taken["unfinished"] + stock_left != t.PERK_STOCK:
        problems.add("perk stock does not add up",
                     f"sold {taken['sold']} + unfinished {taken['unfinished']} + "
                     f"left {stock_left} != {t.PERK_STOCK}")

    rare_left = await conn.fetchval(
        "SELECT stock_left FROM rewards.box_prizes WHERE tenant_id = $1 AND box_id = $2"
        " AND prize_id = 'rare'", tenant, world.box_id)
    rare = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'completed') AS won,"
        # A drawn prize is taken from the stock; a draw released after the pick gives it back.
        " count(*) FILTER (WHERE status = 'drawn') AS unfinished"
        " FROM rewards.draws WHERE tenant_id = $1 AND box_id = $2 AND prize_id = 'rare'",
        tenant, world.box_id)
    acked_rare = sum(1 for op in by_kind(ops, "draw")
                     if acked(op) and op.body["prize"]["prize_id"] == "rare")
    notes.append(f"box: rare prize won {rare['won']}, left {rare_left} of {t.RARE_STOCK}")
    if rare["won"] > t.RARE_STOCK or acked_rare > t.RARE_STOCK:
        problems.add("box prize oversold", f"{rare['won']} won, {acked_rare} acknowledged, "
                                           f"stock {t.RARE_STOCK}")
    if rare["won"] + rare["unfinished"] + rare_left != t.RARE_STOCK:
        problems.add("box prize stock does not add up",
                     f"won {rare['won']} + unfinished {rare['unfinished']} + left {rare_left}"
                     f" != {t.RARE_STOCK}")

    pool = await conn.fetchrow(
        "SELECT p.escrow_member, count(o.*) FILTER (WHERE o.status = 'paid') AS paid,"
        " count(o.*) FILTER (WHERE o.status = 'reserved') AS reserved,"
        " count(DISTINCT o.share_index) FILTER (WHERE o.status <> 'failed') AS shares,"
        " count(o.*) FILTER (WHERE o.status <> 'failed') AS held,"
        " coalesce(sum(o.points) FILTER (WHERE o.status = 'paid'), 0) AS paid_points"
        " FROM rewards.pools p LEFT JOIN rewards.pool_opens o"
        "  ON o.tenant_id = p.tenant_id AND o.pool_id = p.pool_id"
        " WHERE p.tenant_id = $1 AND p.pool_id = $2 GROUP BY p.escrow_member",
        tenant, world.pool_id)
    escrow = await conn.fetchval(
        "SELECT available FROM points.members WHERE tenant_id = $1 AND member_id = $2",
        tenant, pool["escrow_member"])
    acked_opens = sum(1 for op in by_kind(ops, "open") if acked(op))
    notes.append(f"pool: {pool['paid']} paid ({pool['paid_points']} points), "
                 f"{pool['reserved']} reserved of {t.POOL_PACKETS} packets")
    if pool["held"] > t.POOL_PACKETS or acked_opens > t.POOL_PACKETS:
        problems.add("pool oversold", f"{pool['held']} shares taken, {acked_opens} acknowledged, "
                                      f"{t.POOL_PACKETS} packets")
    if pool["shares"] != pool["held"]:
        problems.add("pool share taken twice", f"{pool['held']} opens hold {pool['shares']} shares")
    if escrow != t.POOL_POINTS - pool["paid_points"]:
        problems.add("pool escrow does not add up",
                     f"escrow {escrow} != {t.POOL_POINTS} - paid {pool['paid_points']}")
    return problems.check("no oversell (perk, prize, pool)", context="; ".join(notes))


# --- derived state ---------------------------------------------------------------------------

def _compare(problems: Problems, kind: str, source: dict[str, int], derived: dict[str, int],
             members: Iterable[str]) -> tuple[int, int, int]:
    """Per member; returns (members differing, derived total, source total)."""
    differing = 0
    for member in sorted(members):
        want, got = source.get(member, 0), derived.get(member, 0)
        if want != got:
            differing += 1
            problems.add(kind, f"{member} {got} vs {want}")
    return (differing, sum(derived.get(m, 0) for m in members),
            sum(source.get(m, 0) for m in members))


def _summary(name: str, members: int, compared: tuple[int, int, int]) -> str:
    differing, derived, source = compared
    return f"{name}: {differing} of {members} members differ, {derived:,} vs {source:,}"


async def ledger_members(conn: asyncpg.Connection, tenant: str) -> dict[str, asyncpg.Record]:
    """The ledger's members that are people, not the escrow members of pools and packets (the
    same line as tiers.is_escrow)."""
    return {r["member_id"]: r for r in await conn.fetch(
        "SELECT member_id, available, held, lifetime_earned, spend_cents, earn_multiplier"
        " FROM points.members WHERE tenant_id = $1 AND NOT tiers.is_escrow(member_id)", tenant)}


async def tiers_figures(conn: asyncpg.Connection, world: t.World) -> list[Check]:
    tenant = world.tenant
    ledger = await ledger_members(conn, tenant)
    members = list(ledger)
    available = {r["member_id"]: int(r["points_available"]) for r in await conn.fetch(
        "SELECT member_id, points_available FROM tiers.members WHERE tenant_id = $1", tenant)}
    days = {r["member_id"]: r for r in await conn.fetch(
        "SELECT member_id, sum(points_earned) AS earned, sum(spend_cents) AS spend"
        " FROM tiers.member_days WHERE tenant_id = $1 GROUP BY member_id", tenant)}
    checks = []

    problems = Problems()
    compared = _compare(problems, "points available", {
        m: int(r["available"] + r["held"]) for m, r in ledger.items()}, available, members)
    checks.append(problems.check("tiers points available = ledger", derived=True,
                                 context=_summary("available+held", len(members), compared)))

    problems = Problems()
    compared = _compare(problems, "points earned",
                        {m: int(r["lifetime_earned"]) for m, r in ledger.items()},
                        {m: int(r["earned"]) for m, r in days.items()}, members)
    checks.append(problems.check("tiers points earned = ledger", derived=True,
                                 context=_summary("earned", len(members), compared)))

    problems = Problems()
    compared = _compare(problems, "spend cents",
                        {m: int(r["spend_cents"]) for m, r in ledger.items()},
                        {m: int(r["spend"]) for m, r in days.items()}, members)
    checks.append(problems.check("tiers spend = ledger", derived=True,
                                 context=_summary("spend_cents", len(members), compared)))

    events = {r["member_id"]: r for r in await conn.fetch(
        "SELECT member_id, count(*) AS actions, count(*) FILTER (WHERE amount_cents > 0)"
        " AS purchases FROM points.events WHERE tenant_id = $1 GROUP BY member_id", tenant)}
    actions = {r["member_id"]: int(r["n"]) for r in await conn.fetch(
        "SELECT member_id, sum(actions) AS n FROM tiers.action_days WHERE tenant_id = $1"
        " GROUP BY member_id", tenant)}
    purchases = {r["member_id"]: int(r["n"]) for r in await conn.fetch(
        "SELECT member_id, count(*) AS n FROM tiers.purchases WHERE tenant_id = $1"
        " GROUP BY member_id", tenant)}
    problems = Problems()
    counted = _compare(problems, "actions", {m: int(r["actions"]) for m, r in events.items()},
                       actions, members)
    bought = _compare(problems, "purchases", {m: int(r["purchases"]) for m, r in events.items()},
                      purchases, members)
    checks.append(problems.check(
        "tiers activity = ledger events", derived=True,
        context=f"{_summary('actions', len(members), counted)}; "
                f"{_summary('purchases', len(members), bought)}"))

    tiers = {r["member_id"]: r["tier"] for r in await conn.fetch(
        "SELECT member_id, tier FROM tiers.members WHERE tenant_id = $1", tenant)}
    rewards_tiers = {r["member_id"]: r["tier"] for r in await conn.fetch(
        "SELECT member_id, tier FROM rewards.member_tiers WHERE tenant_id = $1", tenant)}
    problems = Problems()
    benefits = Problems()
    for member, row in sorted(ledger.items()):
        expected, multiplier = expected_tier(int(row["spend_cents"]))
        if tiers.get(member) != expected:
            problems.add("tier", f"{member} {tiers.get(member)} for spend {row['spend_cents']}"
                                 f" (expected {expected})")
        if float(row["earn_multiplier"]) != multiplier:
            benefits.add("earn multiplier",
                         f"{member} {row['earn_multiplier']} in {expected} ({multiplier})")
        if rewards_tiers.get(member) != expected:
            benefits.add("rewards' tier", f"{member} {rewards_tiers.get(member)} vs {expected}")
    checks.append(problems.check("tier = policy(ledger spend)", derived=True))
    checks.append(benefits.check("multiplier and rewards' tier = tier", derived=True))
    return checks


def expected_tier(spend_cents: int) -> tuple[str, float]:
    tier, multiplier = t.TIERS[0][0], 1.0
    for name, floor, mult in t.TIERS:
        if spend_cents >= floor:
            tier, multiplier = name, mult if mult is not None else multiplier
    return tier, multiplier


async def team_scores(conn: asyncpg.Connection, world: t.World) -> Check:
    """Team-buy scores and members' counted spend against the purchases in the ledger."""
    tenant = world.tenant
    source = {r["member_id"]: (r["team_id"], int(r["spend"])) for r in await conn.fetch(
        "SELECT tm.member_id, tm.team_id,"
        " coalesce(sum(e.amount_cents - e.refunded_cents), 0) AS spend"
        " FROM rewards.team_members tm"
        " JOIN rewards.campaigns c ON c.tenant_id = tm.tenant_id"
        "  AND c.campaign_id = tm.campaign_id"
        " LEFT JOIN points.events e ON e.tenant_id = tm.tenant_id AND e.member_id = tm.member_id"
        "  AND e.amount_cents > 0 AND e.occurred_at >= tm.joined_at"
        "  AND e.occurred_at >= c.starts_at AND e.occurred_at < c.ends_at"
        " WHERE tm.tenant_id = $1 AND tm.campaign_id = $2 GROUP BY tm.member_id, tm.team_id",
        tenant, world.campaign_id)}
    counted = {r["member_id"]: int(r["spend_cents"]) for r in await conn.fetch(
        "SELECT member_id, spend_cents FROM rewards.team_members"
        " WHERE tenant_id = $1 AND campaign_id = $2", tenant, world.campaign_id)}
    scores = {r["team_id"]: int(r["score"]) for r in await conn.fetch(
        "SELECT team_id, score FROM rewards.teams WHERE tenant_id = $1 AND campaign_id = $2",
        tenant, world.campaign_id)}
    team_source: Counter[str] = Counter()
    for team_id, spend in source.values():
        team_source[team_id] += spend
    problems = Problems()
    members = _compare(problems, "member spend", {m: s for m, (_, s) in source.items()},
                       counted, source)
    teams = _compare(problems, "team score", dict(team_source), scores, scores.keys() | team_source)
    return problems.check("team scores = purchases", derived=True, context=(
        f"{teams[0]} of {len(scores)} teams differ, scores {teams[1]:,} vs purchases "
        f"{teams[2]:,} cents; {members[0]} of {len(source)} members differ"))


async def leaderboard(conn: asyncpg.Connection, http: httpx.AsyncClient,
                      world: t.World) -> Check:
    """The published board (Redis) against the scores (PostgreSQL)."""
    scores = {r["team_id"]: int(r["score"]) for r in await conn.fetch(
        "SELECT team_id, score FROM rewards.teams WHERE tenant_id = $1 AND campaign_id = $2",
        world.tenant, world.campaign_id)}
    try:
        response = await http.get(f"/rewards/v1/campaigns/{world.campaign_id}/leaderboard",
                                  params={"limit": 100},
                                  headers=world.headers(world.ingest), timeout=10)
    except httpx.TransportError as exc:
        return Check("leaderboard = team scores", False, f"no answer: {exc!r}", derived=True)
    if response.status_code != 200:
        return Check("leaderboard = team scores", False,
                     f"answered {response.status_code}: {response.text[:200]}", derived=True)
    board = {item["team_id"]: int(item["score"]) for item in response.json()["items"]}
    problems = Problems()
    compared = _compare(problems, "board score", scores, board, scores.keys() | board.keys())
    return problems.check("leaderboard = team scores", derived=True, context=(
        f"{compared[0]} of {len(scores)} teams differ"))


async def derived_checks(conn: asyncpg.Connection, http: httpx.AsyncClient,
                         world: t.World) -> list[Check]:
    return [*await tiers_figures(conn, world), await team_scores(conn, world),
            await leaderboard(conn, http, world)]


async def all_checks(stack: FaultStack, conn: asyncpg.Connection, http: httpx.AsyncClient,
                     world: t.World, traffic: t.Traffic) -> list[Check]:
    return [
        *answer_checks(traffic.stats, traffic.ops),
        await ledger_check(stack, world.tenant),
        await acknowledged_once(conn, world, traffic.ops),
        await no_double_transfers(conn, world.tenant),
        await no_oversell(conn, world, traffic.ops),
        *await derived_checks(conn, http, world),
    ]


async def snapshot(conn: asyncpg.Connection, tenant: str) -> tuple[Any, ...]:
    """Figures that move while events are still being applied for the tenant."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM fuli.inbox WHERE tenant_id = $1) AS applied,"
        " (SELECT coalesce(sum(points_available), 0) FROM tiers.members"
        "  WHERE tenant_id = $1) AS available,"
        " (SELECT coalesce(sum(points_earned), 0) + coalesce(sum(spend_cents), 0)"
        "  FROM tiers.member_days WHERE tenant_id = $1) AS days,"
        " (SELECT coalesce(sum(score), 0) FROM rewards.teams WHERE tenant_id = $1) AS scores,"
        " (SELECT count(*) FROM points.transfers WHERE tenant_id = $1) AS transfers",
        tenant)
    return tuple(row.values())


async def unapplied(conn: asyncpg.Connection, tenant: str) -> int:
    """Events of the tenant still in the outbox."""
    return int(await conn.fetchval("SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1",
                                   tenant))
