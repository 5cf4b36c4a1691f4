"""HTTP handlers of segments: definitions, their frozen member lists, CSV export, refresh."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_204_NO_CONTENT

from proto import tiers as t
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.openapi import refuses
from services.tiers.segments.rules import MAX_MEMBERS_PAGE
from services.tiers.segments.segments import Segments

ListLimit = Annotated[int, Parameter(ge=1, le=200)]
MembersLimit = Annotated[int, Parameter(ge=1, le=MAX_MEMBERS_PAGE)]
Cursor = Annotated[str | None, Parameter(max_length=400)]
CSV = "text/csv; charset=utf-8"


class SegmentsController(Controller):
    path = "/segments"
    tags = ["segments"]

    @put("/{segment_id:str}", access=allow("operator"))
    async def put_segment(self, segment_id: PathId, data: JSONBody[t.SegmentBody],
                          principal: PrincipalDep,
                          segments: NamedDependency[Segments]) -> t.Segment:
        """Creates or replaces a segment and computes its member list at once (frozen until
        the next refresh)."""
        return await segments.put(principal.tenant_id, segment_id, data, datetime.now(UTC))

    @post("/previews", access=allow("operator"), status_code=200)
    async def preview(self, data: JSONBody[t.SegmentPreviewBody], principal: PrincipalDep,
                      segments: NamedDependency[Segments]) -> t.SegmentPreview:
        """How many known members a filter selects now, without saving a segment: the count
        an operator sees while composing one."""
        return await segments.preview(principal.tenant_id, data.filter, datetime.now(UTC))

    @get("/", access=allow("operator"))
    async def list_segments(self, principal: PrincipalDep,
                            segments: NamedDependency[Segments], limit: ListLimit = 50,
                            cursor: Cursor = None) -> t.SegmentList:
        """The tenant's segments in id order."""
        return await segments.listed(principal.tenant_id, limit, cursor)

    @get("/{segment_id:str}", access=allow("operator"))
    async def get_segment(self, segment_id: PathId, principal: PrincipalDep,
                          segments: NamedDependency[Segments]) -> t.Segment:
        """The definition, and the count and computation time of the frozen list."""
        return await segments.get(principal.tenant_id, segment_id)

    @get("/{segment_id:str}/members", access=allow("operator"), opt=refuses(409))
    async def members(self, segment_id: PathId, principal: PrincipalDep,
                      segments: NamedDependency[Segments], limit: MembersLimit = 100,
                      cursor: Cursor = None) -> t.SegmentMembers:
        """A page of the frozen member list in member id order; a cursor from before the
        segment was computed again is ``409 segment_recomputed``."""
        return await segments.members(principal.tenant_id, segment_id, limit, cursor)

    @get("/{segment_id:str}/export.csv", access=allow("operator"),
         media_type=CSV, responses={200: ResponseSpec(
             data_container=str, media_type=CSV, generate_examples=False,
             description="`member_id`, then one member id per line")})
    async def export(self, segment_id: PathId, principal: PrincipalDep,
                     segments: NamedDependency[Segments]) -> Stream:
        """The frozen member list as CSV, streamed."""
        lines = await segments.export(principal.tenant_id, segment_id)
        return Stream(lines, media_type=CSV, headers={
            "Content-Disposition": f'attachment; filename="{segment_id}.csv"'})

    @post("/{segment_id:str}/refresh", access=allow("operator"), status_code=200)
    async def refresh(self, segment_id: PathId, principal: PrincipalDep,
                      segments: NamedDependency[Segments]) -> t.Segment:
        """Computes the member list again now."""
        return await segments.refresh(principal.tenant_id, segment_id, datetime.now(UTC))

    @delete("/{segment_id:str}", access=allow("operator"), status_code=HTTP_204_NO_CONTENT)
    async def delete_segment(self, segment_id: PathId, principal: PrincipalDep,
                             segments: NamedDependency[Segments]) -> None:
        await segments.delete(principal.tenant_id, segment_id)


CONTROLLERS = [SegmentsController]
