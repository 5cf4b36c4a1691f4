"""Balance reads that arrive together are made by one statement; each still reads its own
member, of its own tenant, as of after its request arrived."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from services.runtime.resources import Resources
from tests.support.api import Points, make_tenant, uid


async def test_balances_read_together_are_each_members_own(points: Points,
                                                             client: httpx.AsyncClient,
                                                             resources: Resources) -> None:
    other = Points(client, await make_tenant(resources.pool))
    members = [uid("m") for _ in range(30)]
    soon = datetime.now(UTC) + timedelta(days=3)
    granted = await points.grant([
        {"member_id": m, "points": 10 + i, "expires_at": (soon + timedelta(hours=i)).isoformat()}
        for i, m in enumerate(members)])
    assert granted.status_code == 201, granted.text
    # The same member ids in another tenant, with other balances.
    granted = await other.grant([{"member_id": m, "points": 1000 + i}
                                 for i, m in enumerate(members)])
    assert granted.status_code == 201, granted.text
    never_seen = uid("m")

    reads = [(tenant, m) for _ in range(5) for tenant in (points, other)
             for m in [*members, never_seen]]
    states = await asyncio.gather(*[tenant.member(m) for tenant, m in reads])

    for (tenant, member), state in zip(reads, states, strict=True):
        assert state["member_id"] == member
        if member == never_seen:
            assert state["available"] == 0 and state["expiring"] == []
            continue
        i = members.index(member)
        if tenant is points:
            assert state["available"] == 10 + i
            [expiring] = state["expiring"]
            assert expiring["points"] == 10 + i
            assert datetime.fromisoformat(expiring["expires_at"]) == soon + timedelta(hours=i)
        else:
            assert state["available"] == 1000 + i
            assert state["lifetime_earned"] == 1000 + i


async def test_a_read_after_a_write_sees_it_while_reads_are_grouped(points: Points) -> None:
    members = [uid("m") for _ in range(24)]

    async def earn_and_read(member: str) -> list[int]:
        seen = []
        for _ in range(8):
            response = await points.event(member, "speak")
            assert response.status_code == 201, response.text
            seen.append((await points.member(member))["available"])
        return seen

    # The default rule gives 1 point for speak; a member's own reads follow its own events.
    rule = await points.put_rule("speak", points=1)
    assert rule.status_code == 200, rule.text
    histories = await asyncio.gather(*[earn_and_read(m) for m in members])
    assert histories == [list(range(1, 9))] * len(members)
    await points.assert_ledger_ok()
