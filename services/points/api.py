"""HTTP handlers of the points service: decode, authorise, call the ledger, encode."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from proto import points as p
from services.points.ledger import Ledger
from services.points.stats import DEFAULT_DAYS, DEFAULT_HOURS, MAX_DAYS, MAX_HOURS, Stats
from services.runtime.app import outcome_response, replayable
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.ratelimit import WRITE, rate_group

ActionPath = Annotated[str, Parameter(min_length=1, max_length=p.ACTION_MAX_LENGTH,
                                      pattern=p.ACTION_PATTERN)]
PageLimit = Annotated[int, Parameter(ge=1, le=500)]
Cursor = Annotated[str | None, Parameter(max_length=64)]
Days = Annotated[int, Parameter(ge=1, le=MAX_DAYS)]
Hours = Annotated[int, Parameter(ge=1, le=MAX_HOURS)]

EVENTS = rate_group("events")
LedgerDep = NamedDependency[Ledger]
StatsDep = NamedDependency[Stats]


def now() -> datetime:
    return datetime.now(UTC)


class RulesController(Controller):
    path = "/rules"
    tags = ["rules"]

    @get(access=allow("operator"))
    async def list_rules(self, principal: PrincipalDep, ledger: LedgerDep) -> p.RuleList:
        """Earning rules: the tenant's own and the built-in defaults it has not replaced."""
        return await ledger.list_rules(principal.tenant_id)

    @put("/{action:str}", access=allow("admin"))
    async def put_rule(self, action: ActionPath, data: JSONBody[p.RuleIn],
                       principal: PrincipalDep, ledger: LedgerDep) -> p.Rule:
        """Create or replace the earning rule of an action."""
        return await ledger.put_rule(principal.tenant_id, action, data)


class EventsController(Controller):
    path = "/events"
    tags = ["events"]

    @post(access=allow("ingest"), opt=EVENTS, status_code=201,
          responses=replayable(201, p.EventResult))
    async def record_event(self, data: JSONBody[p.EventIn], principal: PrincipalDep,
                           ledger: LedgerDep) -> Response[bytes]:
        """Record a member action and award points by its rule; idempotent by ``event_id``."""
        return outcome_response(await ledger.record_event(principal.tenant_id, data, now()))

    @post("/batch", access=allow("ingest"), opt=EVENTS, status_code=200)
    async def record_batch(self, data: JSONBody[p.EventBatchIn], principal: PrincipalDep,
                           ledger: LedgerDep) -> p.EventBatchResult:
        """Up to 1000 events in one request and one transaction; each is idempotent alone."""
        return await ledger.record_batch(principal.tenant_id, data, now())

    @post("/{event_id:str}/reversal", access=allow("ingest"), opt=WRITE, status_code=201,
          responses=replayable(201, p.Reversal))
    async def reverse(self, event_id: PathId, data: JSONBody[p.ReversalIn],
                      principal: PrincipalDep, ledger: LedgerDep) -> Response[bytes]:
        """Refund: claw back the event's points (pro rata for a partial refund) and its spend."""
        return outcome_response(await ledger.reverse_event(principal.tenant_id, event_id, data,
                                                           now()))


class MembersController(Controller):
    path = "/members/{member_id:str}"
    tags = ["members"]

    @get(access=allow("ingest", member=True))
    async def get_member(self, member_id: PathId, principal: PrincipalDep,
                         ledger: LedgerDep) -> p.Member:
        """Balances, spend and the next expiring points of a member."""
        return await ledger.member(principal.tenant_id, member_id)

    @get("/entries", access=allow("ingest", member=True))
    async def get_entries(self, member_id: PathId, principal: PrincipalDep, ledger: LedgerDep,
                          limit: PageLimit = 50, cursor: Cursor = None) -> p.EntryPage:
        """Ledger history, newest first."""
        return await ledger.entries(principal.tenant_id, member_id, cursor, limit)

    @put("/earn-multiplier", access=allow("admin"))
    async def put_multiplier(self, member_id: PathId, data: JSONBody[p.MultiplierIn],
                             principal: PrincipalDep, ledger: LedgerDep) -> p.MultiplierIn:
        """Set the member's earn multiplier (a tier benefit); rule points are multiplied by it."""
        await ledger.set_multiplier(principal.tenant_id, member_id, data.earn_multiplier, now())
        return data


class HoldsController(Controller):
    path = "/holds"
    tags = ["holds"]

    @post(access=allow("ingest"), opt=WRITE, status_code=201,
          responses=replayable(201, p.Hold))
    async def place(self, data: JSONBody[p.HoldIn], principal: PrincipalDep,
                    ledger: LedgerDep) -> Response[bytes]:
        """Reserve points for a two-phase spend; a pending hold times out to void."""
        return outcome_response(await ledger.place_hold(principal.tenant_id, data, now()))

    @post("/batch", access=allow("ingest"), opt=WRITE, status_code=200)
    async def place_batch(self, data: JSONBody[p.HoldBatchIn], principal: PrincipalDep,
                          ledger: LedgerDep) -> p.HoldBatchResult:
        """Up to 1000 holds in one request and one transaction; each is placed, replayed or
        refused as its own POST /holds would be."""
        return await ledger.place_holds(principal.tenant_id, data, now())

    @post("/settlements", access=allow("ingest"), opt=WRITE, status_code=200)
    async def settle_batch(self, data: JSONBody[p.SettlementBatchIn], principal: PrincipalDep,
                           ledger: LedgerDep) -> p.HoldBatchResult:
        """Up to 1000 captures and voids in one request and one transaction; each is done,
        replayed or refused as its own POST /holds/{hold_id}/capture or /void would be."""
        return await ledger.settle_holds(principal.tenant_id, data, now())

    @post("/{hold_id:str}/capture", access=allow("ingest"), opt=WRITE, status_code=200,
          responses=replayable(200, p.Hold))
    async def capture(self, hold_id: PathId, principal: PrincipalDep, ledger: LedgerDep,
                      data: JSONBody[p.SettleIn | None] = None) -> Response[bytes]:
        """Spend the held points. A hold past its expiry can never be captured (409)."""
        return outcome_response(await ledger.settle_hold(
            principal.tenant_id, hold_id, "capture", data or p.SettleIn(), now()))

    @post("/{hold_id:str}/void", access=allow("ingest"), opt=WRITE, status_code=200,
          responses=replayable(200, p.Hold))
    async def void(self, hold_id: PathId, principal: PrincipalDep, ledger: LedgerDep,
                   data: JSONBody[p.SettleIn | None] = None) -> Response[bytes]:
        """Release the held points back to available."""
        return outcome_response(await ledger.settle_hold(
            principal.tenant_id, hold_id, "void", data or p.SettleIn(), now()))

    @post("/{hold_id:str}/refund", access=allow("ingest"), opt=WRITE, status_code=201,
          responses=replayable(201, p.Refund))
    async def refund(self, hold_id: PathId, data: JSONBody[p.RefundIn],
                     principal: PrincipalDep, ledger: LedgerDep) -> Response[bytes]:
        """Give a captured hold back whole, once, into the lots it came from."""
        return outcome_response(await ledger.refund_hold(principal.tenant_id, hold_id, data,
                                                         now()))


class SpendController(Controller):
    tags = ["debits", "grants"]

    @post("/debits", access=allow("ingest"), opt=WRITE, status_code=201,
          responses=replayable(201, p.Debit))
    async def debit(self, data: JSONBody[p.DebitIn], principal: PrincipalDep,
                    ledger: LedgerDep) -> Response[bytes]:
        """Spend points at once; 409 insufficient_points shows what is available."""
        return outcome_response(await ledger.debit(principal.tenant_id, data, now()))

    @post("/moves", access=allow("ingest"), opt=WRITE, status_code=201,
          responses=replayable(201, p.Move))
    async def move(self, data: JSONBody[p.MoveIn], principal: PrincipalDep,
                   ledger: LedgerDep) -> Response[bytes]:
        """Move points from one member to another (red packets): spent by the sender, a new
        lot for the receiver."""
        return outcome_response(await ledger.move_points(principal.tenant_id, data, now()))

    @post("/retirements", access=allow("operator"), opt=WRITE, status_code=201,
          responses=replayable(201, p.Retirement))
    async def retire(self, data: JSONBody[p.RetirementIn], principal: PrincipalDep,
                     ledger: LedgerDep) -> Response[bytes]:
        """Give a member's points back to the issuance account (an ended pool's escrow)."""
        return outcome_response(await ledger.retire_points(principal.tenant_id, data, now()))

    @post("/grants", access=allow("operator"), opt=WRITE, status_code=201,
          responses=replayable(201, p.Grant))
    async def grant(self, data: JSONBody[p.GrantIn], principal: PrincipalDep,
                    ledger: LedgerDep) -> Response[bytes]:
        """Issue points to up to 10 000 members, all or nothing; audited."""
        return outcome_response(await ledger.grant(principal.tenant_id, principal.key_id, data,
                                                   now()))

    @post("/grants/batch", access=allow("operator"), opt=WRITE, status_code=200)
    async def grant_batch(self, data: JSONBody[p.GrantBatchIn], principal: PrincipalDep,
                          ledger: LedgerDep) -> p.GrantBatchResult:
        """Up to 1000 grants of items (10 000 items in all) in one request and one
        transaction; each is made, replayed or refused as its own POST /grants would be."""
        return await ledger.grant_many(principal.tenant_id, principal.key_id, data, now())

    @get("/ledger/check", access=allow("admin"))
    async def check(self, principal: PrincipalDep, ledger: LedgerDep) -> p.LedgerCheck:
        """The ledger's invariants for this tenant: accounts sum to zero, balances match lots and
        transfers, balance-after chains hold, every event is in the ledger once."""
        return await ledger.check(principal.tenant_id)


class StatsController(Controller):
    path = "/stats"
    tags = ["stats"]

    @get("/daily", access=allow("operator"))
    async def daily(self, principal: PrincipalDep, stats: StatsDep,
                    days: Days = DEFAULT_DAYS) -> p.DailyStats:
        """Per local day of the tenant's time zone, the last ``days`` ending today, oldest first:
        points issued, spent, expired and reversed that day, and the points members held at its
        end (today: now)."""
        return await stats.daily(principal.tenant_id, days, now())

    @get("/hourly", access=allow("operator"))
    async def hourly(self, principal: PrincipalDep, stats: StatsDep,
                     hours: Hours = DEFAULT_HOURS) -> p.HourlyStats:
        """Events recorded and the points they awarded per UTC hour, the last ``hours`` ending
        with the current one, oldest first."""
        return await stats.hourly(principal.tenant_id, hours, now())

    @get("/overview", access=allow("operator"))
    async def overview(self, principal: PrincipalDep, stats: StatsDep) -> p.StatsOverview:
        """Members, members active in the last 7 and 30 days, and the tenant's outbox lag."""
        return await stats.overview(principal.tenant_id, now())


CONTROLLERS = [RulesController, EventsController, MembersController, HoldsController,
               SpendController, StatsController]
