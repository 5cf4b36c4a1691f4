"""HTTP handlers of blind boxes: definition, published odds, draws, proofs, tickets."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from proto import rewards as r
from services.rewards.boxes.boxes import Boxes
from services.rewards.params import Cursor, PageLimit
from services.runtime.app import outcome_response, replayable
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.ratelimit import WRITE


class BoxesController(Controller):
    tags = ["blind boxes"]

    @put("/boxes/{box_id:str}", access=allow("operator"))
    async def put_box(self, box_id: PathId, data: JSONBody[r.BoxIn], principal: PrincipalDep,
                      boxes: NamedDependency[Boxes]) -> r.Odds:
        """Define a box. Every change of its prizes or weights is kept in the audit log."""
        return await boxes.put_box(principal.tenant_id, box_id, data, principal.key_id)

    @get("/boxes", access=allow("operator"))
    async def list_boxes(self, principal: PrincipalDep, boxes: NamedDependency[Boxes],
                         limit: PageLimit = 50, cursor: Cursor = None) -> r.BoxList:
        """The tenant's boxes by id: cost, number of prizes, pity, seed in use, last change."""
        return await boxes.boxes(principal.tenant_id, limit, cursor)

    @get("/boxes/{box_id:str}", access=allow("operator"))
    async def get_box(self, box_id: PathId, principal: PrincipalDep,
                      boxes: NamedDependency[Boxes]) -> r.Box:
        """The box's ``definition`` exactly as ``PUT /boxes/{box_id}`` takes it (a prize's
        ``stock`` is what is left of it, so putting it back changes nothing), with the seed in
        use and the time of the last change."""
        return await boxes.box(principal.tenant_id, box_id)

    @get("/boxes/{box_id:str}/stats", access=allow("operator"))
    async def stats(self, box_id: PathId, principal: PrincipalDep,
                    boxes: NamedDependency[Boxes]) -> r.BoxStats:
        """Prizes drawn since the definition last changed (``since``) against the published
        odds: ``observed`` and ``expected`` (draws x probability) per prize. Draws the pity
        rule decided are counted apart (``pity_draws``): they do not follow the odds."""
        return await boxes.stats(principal.tenant_id, box_id)

    @get("/boxes/{box_id:str}/odds", access=allow("ingest", member=True))
    async def odds(self, box_id: PathId, principal: PrincipalDep,
                   boxes: NamedDependency[Boxes]) -> r.Odds:
        """The exact current odds (the numbers the draw uses), stock, pity and the commitment
        to the seed in use."""
        return await boxes.odds(principal.tenant_id, box_id,
                                principal.member_id if principal.is_member else None)

    @post("/boxes/{box_id:str}/draws", access=allow("ingest", member=True), opt=WRITE,
          status_code=201, responses=replayable(201, r.DrawResult))
    async def draw(self, box_id: PathId, data: JSONBody[r.DrawIn], principal: PrincipalDep,
                   boxes: NamedDependency[Boxes]) -> Response[bytes]:
        """Draw once, paid with a ticket or points; idempotent by ``draw_id``."""
        principal.require_member(data.member_id)
        return outcome_response(await boxes.draw(principal.tenant_id, box_id, data,
                                                 datetime.now(UTC)))

    @get("/boxes/{box_id:str}/draws/{draw_id:str}/proof",
         access=allow("ingest", member=True))
    async def proof(self, box_id: PathId, draw_id: PathId, principal: PrincipalDep,
                    boxes: NamedDependency[Boxes]) -> r.DrawProof:
        """What is needed to verify a draw; the seed appears once it has been rotated out."""
        return await boxes.proof(principal.tenant_id, box_id, draw_id)

    @post("/boxes/{box_id:str}/seed/rotate", access=allow("operator"), status_code=200)
    async def rotate(self, box_id: PathId, principal: PrincipalDep,
                     boxes: NamedDependency[Boxes]) -> r.SeedRotated:
        """Reveal the seed in use and publish the commitment of a new one."""
        return await boxes.rotate_seed(principal.tenant_id, box_id)

    @post("/tickets", access=allow("ingest"), opt=WRITE, status_code=201,
          responses=replayable(201, r.Tickets))
    async def tickets(self, data: JSONBody[r.TicketsIn], principal: PrincipalDep,
                      boxes: NamedDependency[Boxes]) -> Response[bytes]:
        """Give a member draw tickets for a box (guide followed, survey done, group joined)."""
        return outcome_response(await boxes.give_tickets(principal.tenant_id, data))

    @put("/members/{member_id:str}/eligibility", access=allow("ingest"))
    async def eligibility(self, member_id: PathId, data: JSONBody[r.EligibilityIn],
                          principal: PrincipalDep, boxes: NamedDependency[Boxes]
                          ) -> r.EligibilityIn:
        """The member's age band and guardian consent (a band, never a birth date)."""
        return await boxes.put_eligibility(principal.tenant_id, member_id, data)
