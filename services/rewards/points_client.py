"""The points service's HTTP API, as rewards uses it (holds, captures, voids, refunds).

Calls go over services.runtime.peer_http: to FULI_POINTS_URL, else to the points app of this
process, with a service token for the tenant.
"""

from __future__ import annotations

from typing import Any

import msgspec

from proto.points import (
    DebitIn,
    GrantBatchIn,
    GrantIn,
    GrantItem,
    HoldBatchIn,
    HoldIn,
    ItemGrantIn,
    Member,
    MoveIn,
    RefundIn,
    RetirementIn,
    RuleList,
    SettlementBatchIn,
    SettlementIn,
)
from services.runtime.errors import FuliError
from services.runtime.peer_http import PeerHttp, PeerUnreachable
from services.runtime.resources import Resources
from services.runtime.service import Peers

TIMEOUT_S = 5.0

_encoder = msgspec.json.Encoder()


class PointsUnavailable(FuliError):
    status_code = 503
    code = "points_unavailable"


class PointsAnswer(msgspec.Struct, frozen=True):
    status_code: int
    body: dict[str, Any]

    @property
    def error_code(self) -> str | None:
        error = self.body.get("error")
        return error.get("code") if isinstance(error, dict) else None

    @property
    def short_of_points(self) -> bool:
        """Refused for want of points (a member points never saw has none)."""
        return self.error_code in ("insufficient_points", "unknown_member")

    @property
    def error_details(self) -> dict[str, Any]:
        error = self.body.get("error")
        return dict(error.get("details", {})) if isinstance(error, dict) else {}


class PointsClient:
    def __init__(self, peer: PeerHttp) -> None:
        self._peer = peer

    @classmethod
    def connect(cls, resources: Resources, peers: Peers) -> PointsClient:
        """Over the network to FULI_POINTS_URL, else to the points app of this process."""
        return cls(PeerHttp.connect(resources, peers, "points", resources.settings.points_url,
                                    "rewards", TIMEOUT_S))

    async def close(self) -> None:
        await self._peer.close()

    async def _post(self, tenant_id: str, path: str,
                    body: msgspec.Struct | None) -> PointsAnswer:
        try:
            response = await self._peer.post(
                tenant_id, f"/points/v1{path}",
                _encoder.encode(body) if body is not None else None)
        except PeerUnreachable as exc:
            raise PointsUnavailable(f"the points service did not answer: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise PointsUnavailable(f"the points service answered {response.status_code}")
        try:
            decoded = msgspec.json.decode(response.content) if response.content else {}
        except msgspec.DecodeError:
            raise PointsUnavailable("the points service answered garbage") from None
        return PointsAnswer(response.status_code, decoded if isinstance(decoded, dict) else {})

    async def hold(self, tenant_id: str, hold_id: str, member_id: str, points: int,
                   reason: str, expires_in_s: int) -> PointsAnswer:
        return await self._post(tenant_id, "/holds", HoldIn(
            hold_id=hold_id, member_id=member_id, points=points, reason=reason,
            expires_in_s=expires_in_s))

    async def capture(self, tenant_id: str, hold_id: str) -> PointsAnswer:
        return await self._post(tenant_id, f"/holds/{hold_id}/capture", None)

    async def hold_many(self, tenant_id: str, holds: list[HoldIn]) -> list[PointsAnswer]:
        """Each hold's answer, as ``hold`` would have it."""
        return _items(await self._post(tenant_id, "/holds/batch", HoldBatchIn(holds=holds)),
                      len(holds))

    async def capture_many(self, tenant_id: str, hold_ids: list[str]) -> list[PointsAnswer]:
        """Each capture's answer, as ``capture`` would have it."""
        return _items(await self._post(tenant_id, "/holds/settlements", SettlementBatchIn(
            settlements=[SettlementIn(hold_id=hold_id, action="capture")
                         for hold_id in hold_ids])), len(hold_ids))

    async def void(self, tenant_id: str, hold_id: str) -> PointsAnswer:
        return await self._post(tenant_id, f"/holds/{hold_id}/void", None)

    async def grant(self, tenant_id: str, grant_id: str, member_id: str, points: int,
                    reason: str) -> PointsAnswer:
        return await self.grant_each(tenant_id, grant_id, [member_id], points, reason)

    async def grant_each(self, tenant_id: str, grant_id: str, member_ids: list[str],
                         points: int, reason: str) -> PointsAnswer:
        """The same points to each member, in one grant (all or nothing)."""
        return await self._post(tenant_id, "/grants", GrantIn(
            grant_id=grant_id, reason=reason,
            items=[GrantItem(member_id=member_id, points=points) for member_id in member_ids]))

    async def grant_many(self, tenant_id: str,
                         grants: list[tuple[str, str, int, str]]) -> list[PointsAnswer]:
        """Grants of (grant id, member, points, reason), each as ``grant`` would have it."""
        return _items(await self._post(tenant_id, "/grants/batch", GrantBatchIn(grants=[
            ItemGrantIn(grant_id=grant_id, reason=reason,
                        items=[GrantItem(member_id=member_id, points=points)])
            for grant_id, member_id, points, reason in grants])), len(grants))

    async def move(self, tenant_id: str, move_id: str, from_member: str, to_member: str,
                   points: int, reason: str) -> PointsAnswer:
        return await self._post(tenant_id, "/moves", MoveIn(
            move_id=move_id, from_member_id=from_member, to_member_id=to_member, points=points,
            reason=reason))

    async def retire(self, tenant_id: str, retirement_id: str, member_id: str, points: int,
                     reason: str) -> PointsAnswer:
        return await self._post(tenant_id, "/retirements", RetirementIn(
            retirement_id=retirement_id, member_id=member_id, points=points, reason=reason))

    async def debit(self, tenant_id: str, debit_id: str, member_id: str, points: int,
                    reason: str) -> PointsAnswer:
        return await self._post(tenant_id, "/debits", DebitIn(
            debit_id=debit_id, member_id=member_id, points=points, reason=reason))

    async def _get(self, tenant_id: str, path: str) -> bytes:
        try:
            response = await self._peer.get(tenant_id, f"/points/v1{path}")
        except PeerUnreachable as exc:
            raise PointsUnavailable(f"the points service did not answer: {exc}") from None
        if response.status_code != 200:
            raise PointsUnavailable(f"the points service answered {response.status_code}")
        return response.content

    async def available(self, tenant_id: str, member_id: str) -> int:
        return msgspec.json.decode(await self._get(tenant_id, f"/members/{member_id}"),
                                   type=Member).available

    async def rules(self, tenant_id: str) -> RuleList:
        """The tenant's earning rules (its own and the built-in defaults it has not
        replaced)."""
        return msgspec.json.decode(await self._get(tenant_id, "/rules"), type=RuleList)

    async def refund(self, tenant_id: str, hold_id: str, refund_id: str) -> PointsAnswer:
        return await self._post(tenant_id, f"/holds/{hold_id}/refund",
                                RefundIn(refund_id=refund_id))



def _items(answer: PointsAnswer, count: int) -> list[PointsAnswer]:
    """A batch's answer item by item, each as its own request's answer (the result, or the
    error envelope); a batch refused whole (4xx) is that refusal for each item."""
    items = answer.body.get("items")
    if answer.status_code in (404, 405):  # a points service older than its batch routes
        raise PointsUnavailable(f"the points service answered {answer.status_code} to a batch")
    if answer.status_code != 200 or not isinstance(items, list) or len(items) != count:
        if answer.status_code == 200:
            raise PointsUnavailable("the points service answered a batch out of shape")
        return [answer] * count
    return [PointsAnswer(item["status_code"], item["result"] if item.get("result") is not None
                         else {"error": item.get("error") or {}}) for item in items]
