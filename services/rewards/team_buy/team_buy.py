"""Team-buy campaigns: teams, scores from purchases, leaderboards and settlement."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec

from proto import team_buy as tb
from proto.events import CampaignSettled, Envelope, PurchaseRecorded, PurchaseReversed, TeamFormed
from proto.rewards import IssueIn
from services.rewards.ids import digest
from services.rewards.points_client import PointsClient
from services.rewards.team_buy import rules, store
from services.rewards.team_buy.leaderboard import Leaderboards
from services.rewards.wallet import wallet
from services.rewards.windows import open_at
from services.runtime.bus import consume
from services.runtime.db import Conn, Db, Pool
from services.runtime.errors import Conflict, FuliError, NotFound, ValidationFailed
from services.runtime.outbox import emit
from services.runtime.pagination import (
    before_cursor,
    decode_int_cursor,
    encode_cursor,
    newest_first_cursor,
)
from services.runtime.read_groups import ReadGroups
from services.runtime.resources import Resources
from services.runtime.tenants import tenant_time_zone

log = logging.getLogger("fuli.rewards.team_buy")

PURCHASES_CONSUMER = "rewards.apply_team_purchases"


def campaign_view(row: store.CampaignRow, time_zone: str) -> tb.Campaign:
    zone = ZoneInfo(time_zone)
    return tb.Campaign(
        campaign_id=row.campaign_id, name=row.name, team_sizes=row.team_sizes,
        starts_at=row.starts_at.astimezone(zone), ends_at=row.ends_at.astimezone(zone),
        min_team_spend_cents=row.min_team_spend_cents, prizes=row.prizes,
        settle_grace_s=row.settle_grace_s, state=row.state,
        settled_at=row.settled_at.astimezone(zone) if row.settled_at else None)


async def require_campaign(db: Db, tenant_id: str, campaign_id: str) -> store.CampaignRow:
    row = await store.campaign(db, tenant_id, campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
    return row


def _open_for_teams(campaign: store.CampaignRow, now: datetime) -> None:
    # Teams form from the moment a campaign exists; only its end closes them.
    if campaign.state != "open" or not open_at(now, None, campaign.ends_at):
        raise Conflict("the campaign has ended", code="campaign_ended",
                       ends_at=campaign.ends_at.isoformat())


PageKey = tuple[str, str, int, int]  # tenant, campaign, offset, limit
BuiltPage = tuple[list[tb.LeaderboardRow], int]  # the page's rows, the board's size


class TeamBuy:
    """Campaigns, teams and their boards, and the settlement of ended campaigns."""

    def __init__(self, resources: Resources, points: PointsClient) -> None:
        self.db: Pool = resources.pool
        self.points = points
        self.boards = Leaderboards(resources.redis)
        self._built_pages = ReadGroups(self._read_built_pages)

    # --- campaigns and teams ---------------------------------------------------------------

    async def put_campaign(self, tenant_id: str, campaign_id: str,
                           body: tb.CampaignIn) -> tb.Campaign:
        """Creates or changes a campaign until it settles; times without an offset are the
        tenant's local times."""
        async with self.db.acquire() as conn:
            zone = await tenant_time_zone(conn, tenant_id)
            starts_at, ends_at = rules.localise(body.starts_at, zone), rules.localise(
                body.ends_at, zone)
            rules.validate_campaign(body, starts_at, ends_at)
            skus = [prize.sku for prize in body.prizes if prize.sku is not None]
            known = await wallet.known_skus(conn, tenant_id, skus)
            for sku in skus:
                if sku not in known:
                    raise ValidationFailed(f"no perk {sku!r}", field="prizes", sku=sku)
            row = await store.put_campaign(
                conn, tenant_id, campaign_id, body.name, sorted(body.team_sizes), starts_at,
                ends_at, body.min_team_spend_cents, body.prizes, body.settle_grace_s)
        if row is None:
            raise Conflict("the campaign is settling or settled and can no longer change",
                           code="campaign_settled")
        return campaign_view(row, zone)

    async def campaign(self, tenant_id: str, campaign_id: str) -> tb.Campaign:
        row = await require_campaign(self.db, tenant_id, campaign_id)
        return campaign_view(row, await tenant_time_zone(self.db, tenant_id))

    async def campaigns(self, tenant_id: str, state: str | None, limit: int,
                        cursor: str | None) -> tb.CampaignList:
        """The tenant's campaigns newest first, each with its number of teams."""
        rows = await store.campaigns(self.db, tenant_id, state, before_cursor(cursor),
                                     limit + 1)
        page = rows[:limit]
        zone = await tenant_time_zone(self.db, tenant_id)
        items = [tb.CampaignSummary(**msgspec.structs.asdict(campaign_view(row, zone)),
                                    teams=row.teams,
                                    created_at=row.created_at.astimezone(ZoneInfo(zone)))
                 for row in page]
        return tb.CampaignList(items=items, next_cursor=newest_first_cursor(
            page[-1].created_at, page[-1].campaign_id) if len(rows) > limit else None)

    async def create_team(self, tenant_id: str, campaign_id: str, body: tb.TeamIn,
                          now: datetime) -> tuple[bool, tb.Team]:
        """Creates a team with its captain; (False, team) when this very team already
        exists."""
        async with self.db.acquire() as conn:
            campaign = await require_campaign(conn, tenant_id, campaign_id)
            if body.size not in campaign.team_sizes:
                raise ValidationFailed(f"team size {body.size} is not offered; sizes are "
                                       f"{campaign.team_sizes}", field="size")
            existing = await store.team(conn, tenant_id, campaign_id, body.team_id)
            if existing is not None:
                if (existing.captain_member_id, existing.size, existing.name) != (
                        body.captain_member_id, body.size, body.name):
                    raise Conflict(f"team {body.team_id!r} exists with other details",
                                   code="team_exists")
                return False, await self.team(tenant_id, campaign_id, body.team_id, conn)
            _open_for_teams(campaign, now)
            async with conn.transaction():
                if not await store.insert_team(conn, tenant_id, campaign_id, body.team_id,
                                               body.name, body.size, body.captain_member_id,
                                               now):
                    raise Conflict(f"team {body.team_id!r} was just created",
                                   code="team_exists")
                if not await store.add_member(conn, tenant_id, campaign_id, body.team_id,
                                              body.captain_member_id, now):
                    raise Conflict("the captain is already in a team of this campaign",
                                   code="already_in_team")
            return True, await self.team(tenant_id, campaign_id, body.team_id, conn)

    async def join_team(self, tenant_id: str, campaign_id: str, team_id: str, member_id: str,
                        now: datetime) -> tuple[bool, tb.Team]:
        """Adds a member; (False, team) when they already are in this team."""
        async with self.db.acquire() as conn:
            campaign = await require_campaign(conn, tenant_id, campaign_id)
            current = await store.membership(conn, tenant_id, campaign_id, member_id)
            if current is not None:
                if current.team_id == team_id:
                    return False, await self.team(tenant_id, campaign_id, team_id, conn)
                raise Conflict("the member is already in another team of this campaign",
                               code="already_in_team", team_id=current.team_id)
            if await store.team(conn, tenant_id, campaign_id, team_id) is None:
                raise NotFound(f"no team {team_id!r}", code="unknown_team")
            _open_for_teams(campaign, now)
            async with conn.transaction():
                seat = await store.take_seat(conn, tenant_id, campaign_id, team_id)
                if seat is None:
                    raise Conflict("the team is full", code="team_full")
                if not await store.add_member(conn, tenant_id, campaign_id, team_id,
                                              member_id, now):
                    raise Conflict("the member is already in a team of this campaign",
                                   code="already_in_team")
                if seat.members == seat.size:
                    members = await store.team_members(conn, tenant_id, campaign_id, team_id)
                    await emit(conn, service="rewards",
                               tenant_id=tenant_id, events=[TeamFormed(
                                   campaign_id=campaign_id, team_id=team_id, size=seat.size,
                                   member_ids=[m.member_id for m in members], formed_at=now)])
            return True, await self.team(tenant_id, campaign_id, team_id, conn)

    async def team(self, tenant_id: str, campaign_id: str, team_id: str,
                   db: Db | None = None) -> tb.Team:
        db = db or self.db
        team = await store.team(db, tenant_id, campaign_id, team_id)
        if team is None:
            await require_campaign(db, tenant_id, campaign_id)
            raise NotFound(f"no team {team_id!r}", code="unknown_team")
        members = await store.team_members(db, tenant_id, campaign_id, team_id)
        return tb.Team(campaign_id=campaign_id, team_id=team_id, name=team.name,
                       size=team.size, captain_member_id=team.captain_member_id,
                       members=members, score=team.score, reached_at=team.reached_at,
                       full=team.members == team.size)

    # --- boards and results ----------------------------------------------------------------

    async def leaderboard(self, tenant_id: str, campaign_id: str, *, limit: int,
                          cursor: str | None, around_team: str | None,
                          member_id: str | None) -> tb.Leaderboard:
        """A page of teams by the ranking rule, from ``cursor`` or centred on
        ``around_team``; with ``member_id``, also that member's team's row."""
        offset = 0 if cursor is None else decode_int_cursor(cursor)
        # A page from an offset, of a built board, is the read of every visitor: the requests
        # for one page that arrive together share its one round trip to Redis and one to
        # PostgreSQL (which finds the campaign with the teams).
        built = None if around_team is not None else await self._built_pages.read(
            (tenant_id, campaign_id, offset, limit))
        if built is None:
            await require_campaign(self.db, tenant_id, campaign_id)
            await self.boards.ensure_built(self.db, tenant_id, campaign_id)
            if around_team is not None:
                position = await self.boards.team_rank(tenant_id, campaign_id, around_team)
                if position is None:
                    raise NotFound(f"no team {around_team!r} on the board",
                                   code="unknown_team")
                offset = rules.page_around(position, limit)
            page, size = await self.boards.team_page(tenant_id, campaign_id, offset, limit)
            items = await self._board_rows(tenant_id, campaign_id, page)
        else:
            items, size = built
        me = None if member_id is None else await self._row_of_member(tenant_id, campaign_id,
                                                                      member_id)
        return tb.Leaderboard(
            items=items,
            next_cursor=encode_cursor(offset + limit) if offset + limit < size else None,
            me=me)

    async def _read_built_pages(self, keys: Sequence[PageKey]) -> dict[PageKey, BuiltPage]:
        """Each page of a built board with its board's size; a board not built is left out.
        A page of no campaign raises NotFound (its group is then read key by key, so only its
        own requests get the 404)."""
        async def built_page(key: PageKey) -> BuiltPage | None:
            tenant_id, campaign_id, offset, limit = key
            read = await self.boards.built_team_page(tenant_id, campaign_id, offset, limit)
            if read is None:
                return None
            page, size = read
            return await self._board_rows(tenant_id, campaign_id, page), size

        # Different pages (boards, tenants) side by side, as their requests would be alone.
        pages = await asyncio.gather(*(built_page(key) for key in keys))
        return {key: page for key, page in zip(keys, pages, strict=True) if page is not None}

    async def _row_of_member(self, tenant_id: str, campaign_id: str,
                             member_id: str) -> tb.LeaderboardRow | None:
        own = await store.membership(self.db, tenant_id, campaign_id, member_id)
        if own is None:
            return None
        position = await self.boards.team_rank(tenant_id, campaign_id, own.team_id)
        if position is None:
            return None
        page, _ = await self.boards.team_page(tenant_id, campaign_id, position, 1)
        rows = await self._board_rows(tenant_id, campaign_id, page)
        return rows[0] if rows else None

    async def _board_rows(self, tenant_id: str, campaign_id: str,
                          page: list[tuple[int, str, int]]) -> list[tb.LeaderboardRow]:
        teams = await store.teams_by_id(self.db, tenant_id, campaign_id,
                                        [team_id for _, team_id, _ in page])
        if teams is None:
            raise NotFound(f"no campaign {campaign_id!r}", code="unknown_campaign")
        return [tb.LeaderboardRow(rank=rank, team_id=team_id, score=score,
                                  name=teams[team_id].name if team_id in teams else None,
                                  members=teams[team_id].members if team_id in teams else 0)
                for rank, team_id, score in page]

    async def member_board(self, tenant_id: str, campaign_id: str,
                           limit: int) -> tb.MemberBoard:
        await require_campaign(self.db, tenant_id, campaign_id)
        await self.boards.ensure_built(self.db, tenant_id, campaign_id)
        page = await self.boards.member_page(tenant_id, campaign_id, limit)
        teams = await store.teams_of_members(self.db, tenant_id, campaign_id,
                                             [member for _, member, _ in page])
        return tb.MemberBoard(items=[
            tb.MemberRow(rank=rank, member_id=member, team_id=teams.get(member, ""), score=score)
            for rank, member, score in page])

    async def results(self, tenant_id: str, campaign_id: str) -> tb.Results:
        """The frozen ranking with prizes; empty until the campaign is settled."""
        campaign = await require_campaign(self.db, tenant_id, campaign_id)
        if campaign.state != "settled":
            return tb.Results(state=campaign.state, items=[])
        return tb.Results(state="settled",
                          items=await store.results(self.db, tenant_id, campaign_id))

    # --- scores and settlement -------------------------------------------------------------

    async def apply_purchases(self, bodies: str | list[str]) -> None:
        """Purchases and refunds (``PurchaseRecorded``, ``PurchaseReversed`` envelopes) into
        team scores, then onto the boards."""
        changes = ScoreChanges(self.boards)
        try:
            await consume(self.db, PURCHASES_CONSUMER, bodies, changes.apply, serialized=True)
        finally:
            await changes.publish()

    async def sync_boards(self) -> None:
        """Republishes open campaigns' boards from PostgreSQL."""
        for ref in await store.open_campaigns(self.db):
            await self.boards.rebuild(self.db, ref.tenant_id, ref.campaign_id)

    async def settle_due(self, now: datetime) -> None:
        """Settles campaigns past their end and grace; one that cannot finish now is left
        for the next run."""
        for ref in await store.due_campaigns(self.db, now):
            try:
                await self.settle(ref.tenant_id, ref.campaign_id, now)
            except FuliError as exc:
                log.warning("campaign %s not settled yet: %s", ref.campaign_id, exc)

    async def settle(self, tenant_id: str, campaign_id: str, now: datetime) -> bool:
        """Freezes the ranking once, then issues each ranked team's prize once (a run that
        dies leaves the rest to the next; concurrent runs take different teams; the points
        grant and the wallet issue have ids derived from the campaign and rank, so a repeat is
        a replay). Returns True when the campaign is settled."""
        async with self.db.acquire() as conn, conn.transaction():
            campaign = await store.start_settling(conn, tenant_id, campaign_id)
            if campaign is not None:
                await freeze(conn, campaign)
        while await self.issue_next(tenant_id, campaign_id, now):
            pass
        async with self.db.acquire() as conn, conn.transaction():
            done = await store.finish_settling(conn, tenant_id, campaign_id, now)
            if done is not None:
                await emit(conn, service="rewards",
                           tenant_id=tenant_id, events=[CampaignSettled(
                               campaign_id=campaign_id, teams_ranked=done.ranked,
                               teams_with_prizes=done.with_prizes, settled_at=now)])
        campaign = await store.campaign(self.db, tenant_id, campaign_id)
        return campaign is not None and campaign.state == "settled"

    async def issue_next(self, tenant_id: str, campaign_id: str, now: datetime) -> bool:
        """Issues one team's prize; False when none is left to issue."""
        async with self.db.acquire() as conn, conn.transaction():
            result = await store.claim_unissued(conn, tenant_id, campaign_id)
            if result is None:
                return False
            prize = result.prize
            assert prize is not None  # results without a prize are stored as issued
            issue_id = "teambuy:" + digest(campaign_id, str(result.rank))
            reason = f"team-buy {campaign_id} rank {result.rank}"
            if prize.points is not None:
                answer = await self.points.grant_each(tenant_id, issue_id, result.member_ids,
                                                      prize.points, reason)
                if answer.status_code != 201:
                    raise Conflict("the prize points could not be granted",
                                   code="grant_failed", reason=answer.error_code)
            if prize.sku is not None:
                outcome = await wallet.issue(conn, tenant_id, None, IssueIn(
                    issue_id=issue_id, reason=reason, kind="perk", sku=prize.sku,
                    member_ids=result.member_ids), now)
                if outcome.status_code != 201:
                    raise Conflict("the prize perk could not be issued", code="issue_failed",
                                   status=outcome.status_code)
            await store.mark_issued(conn, tenant_id, campaign_id, result.rank)
        return True


async def freeze(conn: Conn, campaign: store.CampaignRow) -> None:
    """Stores the final ranking of the teams that reached the minimum spend, with prizes."""
    ranked = [team for team in await store.ranking(conn, campaign.tenant_id,
                                                   campaign.campaign_id)
              if rules.qualifies(team.score, campaign.min_team_spend_cents)]
    await store.store_results(conn, campaign.tenant_id, campaign.campaign_id, [
        store.CampaignResult(rank=rank, team_id=team.team_id, score=team.score,
                             prize=rules.prize_for(rank, campaign.prizes),
                             member_ids=team.member_ids)
        for rank, team in enumerate(ranked, 1)])


class ScoreChanges:
    """Applies purchases and refunds to team scores inside the consumer's transaction, and
    keeps the rows they changed to publish to the boards after the commit."""

    def __init__(self, boards: Leaderboards) -> None:
        self.boards = boards
        self.teams: dict[tuple[str, str], list[store.TeamScore]] = {}
        self.members: dict[tuple[str, str], list[store.MemberScore]] = {}

    async def apply(self, conn: Conn, envelope: Envelope) -> None:
        tenant = envelope.tenant_id
        if envelope.type == "PurchaseRecorded":
            bought = msgspec.json.decode(envelope.data, type=PurchaseRecorded)
            refund = await store.refund_of(conn, tenant, bought.event_id)
            refunded = refund.refunded_cents if refund else 0
            reached = max(bought.occurred_at, refund.last_at) if refund else bought.occurred_at
            for counted in await store.count_purchase(conn, tenant, bought.event_id,
                                                      bought.member_id, bought.amount_cents,
                                                      refunded, bought.occurred_at):
                await self._add(conn, tenant, counted, reached)
        elif envelope.type == "PurchaseReversed":
            reversal = msgspec.json.decode(envelope.data, type=PurchaseReversed)
            await store.record_refund(conn, tenant, reversal.event_id, reversal.amount_cents,
                                      reversal.reversed_at)
            for counted in await store.uncount_refund(conn, tenant, reversal.event_id,
                                                      reversal.amount_cents):
                if counted.net:
                    await self._add(conn, tenant, counted, reversal.reversed_at)

    async def _add(self, conn: Conn, tenant_id: str, counted: store.Counted,
                   at: datetime) -> None:
        team, member = await store.add_score(conn, tenant_id, counted.campaign_id,
                                             counted.team_id, counted.member_id, counted.net,
                                             at)
        self.teams.setdefault((tenant_id, counted.campaign_id), []).append(team)
        self.members.setdefault((tenant_id, counted.campaign_id), []).append(member)

    async def publish(self) -> None:
        for (tenant_id, campaign_id), teams in self.teams.items():
            await self.boards.publish_quietly(tenant_id, campaign_id, teams,
                                              self.members[(tenant_id, campaign_id)])
