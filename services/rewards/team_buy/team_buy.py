"""Team-buy campaigns: teams, scores from purchases, leaderboards and settlement."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from proto import team_buy as tb
from proto.events import CampaignSettled, Envelope, PurchaseRecorded, PurchaseReversed, TeamFormed
from proto.rewards import IssueIn
from services.rewards import store, wallet
from services.rewards.points_client import PointsClient
from services.rewards.red_packets.red_packets import digest
from services.rewards.team_buy import store as team_store
from services.rewards.team_buy.leaderboard import Leaderboards
from services.rewards.team_buy.rules import localise, prize_for, validate_campaign
from services.runtime.errors import Conflict, NotFound, ValidationFailed
from services.runtime.outbox import emit

log = logging.getLogger("fuli.rewards.team_buy")


def campaign_view(row: asyncpg.Record, time_zone: str) -> tb.Campaign:
    zone = ZoneInfo(time_zone)
    return tb.Campaign(
        campaign_id=row["campaign_id"], name=row["name"], team_sizes=list(row["team_sizes"]),
        starts_at=row["starts_at"].astimezone(zone), ends_at=row["ends_at"].astimezone(zone),
        min_team_spend_cents=row["min_team_spend_cents"],
        prizes=msgspec.convert(row["prizes"], list[tb.PrizeOut]),
        settle_grace_s=row["settle_grace_s"], state=row["state"],
        settled_at=row["settled_at"].astimezone(zone) if row["settled_at"] else None)


async def require_campaign(conn: team_store.Conn, tenant_id: str,
                           campaign_id: str) -> asyncpg.Record:
    row = await team_store.campaign(conn, tenant_id, campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    return row


async def put_campaign(conn: asyncpg.Connection, tenant_id: str, campaign_id: str,
                       body: tb.CampaignIn) -> tb.Campaign:
    zone = await store.tenant_time_zone(conn, tenant_id)
    starts_at, ends_at = localise(body.starts_at, zone), localise(body.ends_at, zone)
    validate_campaign(body, starts_at, ends_at)
    for prize in body.prizes:
        if prize.sku is not None and not await wallet.perk_exists(conn, tenant_id, prize.sku):
            raise ValidationFailed(f"no perk {prize.sku!r}", field="prizes", sku=prize.sku)
    row = await team_store.put_campaign(
        conn, tenant_id, campaign_id, body.name, sorted(body.team_sizes), starts_at, ends_at,
        body.min_team_spend_cents, msgspec.to_builtins(body.prizes), body.settle_grace_s)
    if row is None:
        raise Conflict("the campaign is settling or settled and can no longer change",
                       code="campaign_settled")
    return campaign_view(row, zone)


def _open_for_teams(campaign: asyncpg.Record, now: datetime) -> None:
    if campaign["state"] != "open" or now >= campaign["ends_at"]:
        raise Conflict("the campaign has ended", code="campaign_ended",
                       ends_at=campaign["ends_at"].isoformat())


async def create_team(conn: asyncpg.Connection, tenant_id: str, campaign_id: str,
                      body: tb.TeamIn, now: datetime) -> tuple[bool, tb.Team]:
    """Creates a team with its captain; (False, team) when this very team already exists."""
    campaign = await require_campaign(conn, tenant_id, campaign_id)
    if body.size not in campaign["team_sizes"]:
        raise ValidationFailed(f"team size {body.size} is not offered; sizes are "
                               f"{list(campaign['team_sizes'])}", field="size")
    existing = await team_store.team(conn, tenant_id, campaign_id, body.team_id)
    if existing is not None:
        if (existing["captain_member_id"], existing["size"], existing["name"]) != (
                body.captain_member_id, body.size, body.name):
            raise Conflict(f"team {body.team_id!r} exists with other details",
                           code="team_exists")
        return False, await team_view(conn, tenant_id, campaign_id, body.team_id)
    _open_for_teams(campaign, now)
    async with conn.transaction():
        if not await team_store.insert_team(conn, tenant_id, campaign_id, body.team_id,
                                            body.name, body.size, body.captain_member_id, now):
            raise Conflict(f"team {body.team_id!r} was just created", code="team_exists")
        if not await team_store.add_member(conn, tenant_id, campaign_id, body.team_id,
                                           body.captain_member_id, now):
            raise Conflict("the captain is already in a team of this campaign",
                           code="already_in_team")
    return True, await team_view(conn, tenant_id, campaign_id, body.team_id)


async def join_team(conn: asyncpg.Connection, tenant_id: str, campaign_id: str, team_id: str,
                    member_id: str, now: datetime) -> tuple[bool, tb.Team]:
    """Adds a member; (False, team) when they already are in this team."""
    campaign = await require_campaign(conn, tenant_id, campaign_id)
    current = await team_store.membership(conn, tenant_id, campaign_id, member_id)
    if current is not None:
        if current["team_id"] == team_id:
            return False, await team_view(conn, tenant_id, campaign_id, team_id)
        raise Conflict("the member is already in another team of this campaign",
                       code="already_in_team", team_id=current["team_id"])
    if await team_store.team(conn, tenant_id, campaign_id, team_id) is None:
        raise NotFound(f"no team {team_id!r}", code="unknown_team")
    _open_for_teams(campaign, now)
    async with conn.transaction():
        seat = await team_store.take_seat(conn, tenant_id, campaign_id, team_id)
        if seat is None:
            raise Conflict("the team is full", code="team_full")
        if not await team_store.add_member(conn, tenant_id, campaign_id, team_id, member_id,
                                           now):
            raise Conflict("the member is already in a team of this campaign",
                           code="already_in_team")
        if seat["members"] == seat["size"]:
            members = await team_store.team_members(conn, tenant_id, campaign_id, team_id)
            await emit(conn, service="rewards", tenant_id=tenant_id, events=[TeamFormed(
                campaign_id=campaign_id, team_id=team_id, size=seat["size"],
                member_ids=[m["member_id"] for m in members], formed_at=now)])
    return True, await team_view(conn, tenant_id, campaign_id, team_id)


async def team_view(conn: team_store.Conn, tenant_id: str, campaign_id: str,
                    team_id: str) -> tb.Team:
    team = await team_store.team(conn, tenant_id, campaign_id, team_id)
    if team is None:
        await require_campaign(conn, tenant_id, campaign_id)
        raise NotFound(f"no team {team_id!r}", code="unknown_team")
    members = await team_store.team_members(conn, tenant_id, campaign_id, team_id)
    return tb.Team(campaign_id=campaign_id, team_id=team_id, name=team["name"],
                   size=team["size"], captain_member_id=team["captain_member_id"],
                   members=[tb.TeamMember(member_id=m["member_id"], joined_at=m["joined_at"],
                                          spend_cents=m["spend_cents"]) for m in members],
                   score=team["score"], reached_at=team["reached_at"],
                   full=team["members"] == team["size"])


class ScoreChanges:
    """Rows whose scores a batch of events changed, to publish after the commit."""

    def __init__(self) -> None:
        self.teams: dict[tuple[str, str], list[asyncpg.Record]] = {}
        self.members: dict[tuple[str, str], list[asyncpg.Record]] = {}

    async def apply(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        tenant = envelope.tenant_id
        if envelope.type == "PurchaseRecorded":
            bought = msgspec.json.decode(envelope.data, type=PurchaseRecorded)
            refund = await team_store.refund_of(conn, tenant, bought.event_id)
            refunded = refund["refunded_cents"] if refund else 0
            reached = max(bought.occurred_at, refund["last_at"]) if refund else bought.occurred_at
            for row in await team_store.count_purchase(conn, tenant, bought.event_id,
                                                       bought.member_id, bought.amount_cents,
                                                       refunded, bought.occurred_at):
                await self._add(conn, tenant, row["campaign_id"], row["team_id"],
                                bought.member_id, row["net"], reached)
        elif envelope.type == "PurchaseReversed":
            refund = msgspec.json.decode(envelope.data, type=PurchaseReversed)
            await team_store.record_refund(conn, tenant, refund.event_id, refund.amount_cents,
                                           refund.reversed_at)
            for row in await team_store.uncount_refund(conn, tenant, refund.event_id,
                                                       refund.amount_cents):
                if row["net"]:
                    await self._add(conn, tenant, row["campaign_id"], row["team_id"],
                                    row["member_id"], row["net"], refund.reversed_at)

    async def _add(self, conn: asyncpg.Connection, tenant_id: str, campaign_id: str,
                   team_id: str, member_id: str, net: int, at: datetime) -> None:
        team, member = await team_store.add_score(conn, tenant_id, campaign_id, team_id,
                                                  member_id, net, at)
        self.teams.setdefault((tenant_id, campaign_id), []).append(team)
        self.members.setdefault((tenant_id, campaign_id), []).append(member)

    async def publish(self, boards: Leaderboards) -> None:
        for (tenant_id, campaign_id), teams in self.teams.items():
            await boards.publish_quietly(tenant_id, campaign_id, teams,
                                         self.members[(tenant_id, campaign_id)])


async def settle(pool: asyncpg.Pool, points: PointsClient, tenant_id: str, campaign_id: str,
                 now: datetime) -> bool:
    """Freezes the ranking once, then issues each ranked team's prize once (a run that dies
    leaves the rest to the next; concurrent runs take different teams; the points grant and the
    wallet issue have ids derived from the campaign and rank, so a repeat is a replay).
    Returns True when the campaign is settled."""
    async with pool.acquire() as conn, conn.transaction():
        campaign = await team_store.start_settling(conn, tenant_id, campaign_id)
        if campaign is not None:
            await freeze(conn, campaign)
    while await issue_next(pool, points, tenant_id, campaign_id, now):
        pass
    async with pool.acquire() as conn, conn.transaction():
        done = await team_store.finish_settling(conn, tenant_id, campaign_id, now)
        if done is not None:
            await emit(conn, service="rewards", tenant_id=tenant_id, events=[CampaignSettled(
                campaign_id=campaign_id, teams_ranked=done["ranked"],
                teams_with_prizes=done["with_prizes"], settled_at=now)])
    campaign = await team_store.campaign(pool, tenant_id, campaign_id)
    return campaign is not None and campaign["state"] == "settled"


async def freeze(conn: asyncpg.Connection, campaign: asyncpg.Record) -> None:
    """Stores the final ranking of the teams that reached the minimum spend, with prizes."""
    prizes = msgspec.convert(campaign["prizes"], list[tb.Prize])
    qualified = [r for r in await team_store.ranking(conn, campaign["tenant_id"],
                                                     campaign["campaign_id"])
                 if r["score"] >= campaign["min_team_spend_cents"] and r["score"] > 0]
    rows = []
    for rank, row in enumerate(qualified, 1):
        prize = prize_for(rank, prizes)
        rows.append((rank, row["team_id"], row["score"],
                     msgspec.to_builtins(prize) if prize else None, list(row["member_ids"])))
    await team_store.store_results(conn, campaign["tenant_id"], campaign["campaign_id"], rows)


async def issue_next(pool: asyncpg.Pool, points: PointsClient, tenant_id: str,
                     campaign_id: str, now: datetime) -> bool:
    """Issues one team's prize; False when none is left to issue."""
    async with pool.acquire() as conn, conn.transaction():
        row = await team_store.claim_unissued(conn, tenant_id, campaign_id)
        if row is None:
            return False
        prize = row["prize"]
        key = digest(campaign_id, str(row["rank"]))
        reason = f"team-buy {campaign_id} rank {row['rank']}"
        if prize.get("points"):
            answer = await points.grant_each(tenant_id, f"teambuy:{key}", list(row["member_ids"]),
                                             prize["points"], reason)
            if answer.status_code != 201:
                raise Conflict("the prize points could not be granted", code="grant_failed",
                               reason=answer.error_code)
        if prize.get("sku"):
            await issue_perk(conn, tenant_id, f"teambuy:{key}", prize["sku"],
                             list(row["member_ids"]), reason, now)
        await team_store.mark_issued(conn, tenant_id, campaign_id, row["rank"])
    return True


async def issue_perk(conn: asyncpg.Connection, tenant_id: str, issue_id: str, sku: str,
                     member_ids: list[str], reason: str, now: datetime) -> None:
    outcome = await wallet.issue(conn, tenant_id, None, IssueIn(
        issue_id=issue_id, reason=reason, kind="perk", sku=sku, member_ids=member_ids),
        now)
    if outcome.status_code != 201:
        raise Conflict("the prize perk could not be issued", code="issue_failed",
                       status=outcome.status_code)
