from __future__ import annotations

from tests.support.api import Points, uid


async def test_earn_hold_capture_debit_reverse(points: Points) -> None:
    m = uid("m")
    r = await points.event(m, "purchase", amount_cents=12345)
    assert r.status_code == 201, r.text
    assert r.json()["points"] == 123 and r.json()["balance"] == 123
    ev = r.json()["event_id"]
    h = await points.hold(m, 20)
    assert h.status_code == 201, h.text
    c = await points.capture(h.json()["hold_id"])
    assert c.status_code == 200, c.text
    d = await points.debit(m, 3)
    assert d.status_code == 201, d.text
    rv = await points.reverse(ev, amount_cents=5000)
    assert rv.status_code == 201, rv.text
    info = await points.member(m)
    assert info["available"] == 123 - 20 - 3 - rv.json()["clawed_back"]
    await points.assert_ledger_ok()
    e = await points.entries(m)
    assert [x["kind"] for x in e["items"]] == ["reversal", "debit", "capture", "hold", "earn"]
