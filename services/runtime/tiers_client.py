"""The tiers service's HTTP API, as the issuing services (rewards' issues, points' grants) use
it: a segment's frozen member list, read whole in one page.

Calls go over services.runtime.peer_http: to FULI_TIERS_URL, else to the tiers app of this
process, with a service token for the tenant. The issuing service never reads the tiers
tables.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from proto.tiers import SegmentMembers
from services.runtime.errors import Conflict, FuliError, NotFound, ValidationFailed
from services.runtime.peer_http import PeerHttp, PeerUnreachable
from services.runtime.resources import Resources
from services.runtime.service import Peers

TIMEOUT_S = 10.0

_members = msgspec.json.Decoder(SegmentMembers)


class TiersUnavailable(FuliError):
    status_code = 503
    code = "tiers_unavailable"


class SegmentTarget(msgspec.Struct, frozen=True):
    """A segment's frozen list as read at issue time: its members, count and computation."""

    segment_id: str
    count: int
    computed_at: datetime
    member_ids: list[str]


class TiersClient:
    def __init__(self, peer: PeerHttp) -> None:
        self._peer = peer

    @classmethod
    def connect(cls, resources: Resources, peers: Peers, caller: str) -> TiersClient:
        """Over the network to FULI_TIERS_URL, else to the tiers app of this process."""
        return cls(PeerHttp.connect(resources, peers, "tiers", resources.settings.tiers_url,
                                    caller, TIMEOUT_S))

    async def close(self) -> None:
        await self._peer.close()

    async def segment(self, tenant_id: str, segment_id: str, limit: int) -> SegmentTarget:
        """The segment's whole frozen list (one page, one snapshot of the segment). Refuses
        an unknown segment (404 ``unknown_segment``), one of more than ``limit`` members (422
        ``segment_too_large``) and an empty one (409 ``segment_empty``); a tiers service that
        does not answer is 503 ``tiers_unavailable``."""
        try:
            response = await self._peer.get(tenant_id, f"/tiers/v1/segments/{segment_id}/members",
                                            {"limit": limit})
        except PeerUnreachable as exc:
            raise TiersUnavailable(f"the tiers service did not answer: {exc}") from None
        if response.status_code == 404:
            raise NotFound(f"no segment {segment_id!r}", code="unknown_segment",
                           field="segment_id")
        if response.status_code != 200:
            raise TiersUnavailable(f"the tiers service answered {response.status_code}")
        try:
            page = _members.decode(response.content)
        except msgspec.DecodeError:
            raise TiersUnavailable("the tiers service answered garbage") from None
        if page.count > limit:
            raise ValidationFailed(
                f"segment {segment_id!r} has {page.count} members, more than {limit}",
                code="segment_too_large", field="segment_id", count=page.count, limit=limit)
        if page.count == 0:
            raise Conflict(f"segment {segment_id!r} has no members", code="segment_empty",
                           computed_at=page.computed_at.isoformat())
        if page.next_cursor is not None or len(page.items) != page.count:
            raise TiersUnavailable("the tiers service answered an incomplete member list")
        return SegmentTarget(segment_id=segment_id, count=page.count,
                             computed_at=page.computed_at,
                             member_ids=[item.member_id for item in page.items])
