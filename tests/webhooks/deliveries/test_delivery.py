"""Deliveries end to end over real servers: events from the points and rewards APIs, through
the outbox and the webhooks consumer, sent by the sender to receivers on 127.0.0.1 that verify
every request with the `standardwebhooks` package."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from standardwebhooks import Webhook

from proto.events import PUBLIC_EVENT_TYPES, tier_changed_id
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.webhooks.deliveries import rules
from services.webhooks.deliveries.sender import Sender
from tests.support.api import Points, Rewards, Tenant, error_code, uid
from tests.support.bus import deliver
from tests.support.webhooks import Receiver
from tests.webhooks.conftest import Hooks, names

BASE = "/webhooks/v1/endpoints"
StartReceiver = Callable[..., Receiver]


async def subscribe(hooks: Hooks, tenant: Tenant, receiver: Receiver,
                    types: list[str]) -> str:
    created = await hooks.client.post(BASE, headers=tenant.headers(tenant.admin), json={
        "url": receiver.url, "event_types": types, "allow_http": True})
    assert created.status_code == 201, created.text
    receiver.secrets.append(created.json()["secret"])
    return str(created.json()["endpoint_id"])


async def outbox_events(resources: Resources, tenant: Tenant) -> list[tuple[str, str]]:
    rows = await resources.pool.fetch(
        "SELECT event_id::text AS event_id, event_type FROM fuli.outbox WHERE tenant_id = $1",
        tenant.name)
    return [(r["event_id"], r["event_type"]) for r in rows]


async def deliveries(hooks: Hooks, tenant: Tenant, endpoint_id: str,
                     **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = await hooks.client.get(
            f"{BASE}/{endpoint_id}/deliveries", headers=tenant.headers(tenant.admin),
            params={**params, "limit": 7, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


async def grant(hooks: Hooks, tenant: Tenant, members: int = 1) -> None:
    points = Points(hooks.client, tenant)
    for _ in range(members):
        await points.give(uid("m"), 5)


async def test_a_mixed_workload_arrives_once_per_subscribed_event_and_nothing_else(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    # The first attempt of about a quarter of the messages fails: duplicates on the wire are
    # allowed, none may be missing.
    def flaky(webhook_id: str, attempt: int) -> tuple[int, float, dict[str, str]]:
        return (500 if attempt == 1 and zlib.crc32(webhook_id.encode()) % 4 == 0 else 200,
                0.0, {})

    narrow, broad = receiver(flaky), receiver()
    narrow_types = ["PointsAwarded", "RedemptionCompleted"]
    narrow_id = await subscribe(hooks, tenant, narrow, narrow_types)
    broad_id = await subscribe(hooks, tenant, broad, ["*"])

    points, rewards = Points(hooks.client, tenant), Rewards(hooks.client, tenant)
    members = [uid("m") for _ in range(4)]
    for i in range(12):
        sent = await points.event(members[i % 4], "speak")
        assert sent.status_code == 201, sent.text
    for member in members[:3]:
        sent = await points.event(member, "purchase", amount_cents=12_000)
        assert sent.status_code == 201, sent.text
        await points.give(member, 100)
    for member in members[:2]:
        assert (await points.debit(member, 3)).status_code == 201
    sku = await rewards.perk(cost_points=10, stock=5)
    for member in members[:2]:
        redeemed = await rewards.redeem(member, sku)
        assert redeemed.status_code == 201, redeemed.text

    events = await outbox_events(resources, tenant)
    types = {t for _, t in events}
    assert {"PointsAwarded", "PointsSpent", "RedemptionCompleted"} <= types
    assert types - set(PUBLIC_EVENT_TYPES), "the workload has events that are not pushed"
    # Every bus message twice: the consumer's inbox drops the repeats.
    await deliver(resources, settings, tenant.name, twice=True)

    expected_narrow = {rules.delivery_id(e, narrow_id) for e, t in events if t in narrow_types}
    expected_broad = {rules.delivery_id(e, broad_id) for e, t in events
                      if t in PUBLIC_EVENT_TYPES}
    await hooks.pump_until(lambda: set(narrow.delivered_ids()) >= expected_narrow
                           and set(broad.delivered_ids()) >= expected_broad)
    await hooks.settle()

    assert set(narrow.verified_ids()) == set(narrow.delivered_ids()) == expected_narrow
    assert set(broad.verified_ids()) == set(broad.delivered_ids()) == expected_broad
    assert sorted(narrow.delivered_ids()) == sorted(expected_narrow), "once each"
    assert all(a.verified for a in narrow.arrivals + broad.arrivals)
    assert {a.event_type for a in narrow.arrivals} == set(narrow_types)
    assert {a.event_type for a in broad.arrivals} <= set(PUBLIC_EVENT_TYPES)
    assert len(narrow.arrivals) > len(expected_narrow), "some first attempts failed"
    assert len(broad.arrivals) == len(expected_broad), "a receiver that answers 2xx gets one"
    for endpoint_id, expected in ((narrow_id, expected_narrow), (broad_id, expected_broad)):
        listed = await deliveries(hooks, tenant, endpoint_id)
        assert {d["delivery_id"] for d in listed} == expected
        assert {d["status"] for d in listed} == {"delivered"}
    body = broad.arrivals[0].body
    assert set(body) == {"type", "timestamp", "data"} and "type" not in body["data"]


async def test_a_stratification_reaches_every_consumer_and_each_member_s_webhook_once(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    """A pass's moves travel as TierChanges events of up to 1,000 members: the rewards and
    points consumers apply every member of them, and the webhooks service pushes each member's
    TierChanged, with an id of its own that a redelivered event does not change."""
    target = receiver()
    endpoint_id = await subscribe(hooks, tenant, target, ["TierChanged"])
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    policy = {"mode": "percentile", "metric": "spend_cents", "grace_days": 0, "tiers": [
        {"name": "fan", "share": 0.5}, {"name": "member", "share": 0.3},
        {"name": "vip", "share": 0.2, "benefits": {"earn_multiplier": 1.5}}]}
    assert (await hooks.client.put("/tiers/v1/policy", headers=admin,
                                   json=policy)).status_code == 200
    members = [f"m{i:04d}" for i in range(1, 1201)]  # spends rise with the ids
    await resources.pool.execute(
        "INSERT INTO tiers.members (tenant_id, member_id) SELECT $1, unnest($2::text[])",
        tenant.name, members)
    await resources.pool.execute(
        "INSERT INTO tiers.member_days (tenant_id, member_id, day, spend_cents)"
        " SELECT $1, m, current_date, 100 * o FROM unnest($2::text[]) WITH ORDINALITY AS"
        " t(m, o)", tenant.name, members)
    assert (await hooks.client.post("/tiers/v1/evaluations", headers=operator)).json()[
        "changed"] == 1200
    tiers = {m: "fan" if i < 600 else "member" if i < 960 else "vip"
             for i, m in enumerate(members)}

    events = await resources.pool.fetch(
        "SELECT event_id::text AS event_id, payload FROM fuli.outbox WHERE tenant_id = $1"
        " AND event_type = 'TierChanges'", tenant.name)
    # The first thousand movers in three events, one a tier; the last 200 (all vip) in one.
    assert sorted(len(json.loads(e["payload"])["member_ids"]) for e in events) == [
        40, 200, 360, 600]
    pushed = {tier_changed_id(e["event_id"], m): m
              for e in events for m in json.loads(e["payload"])["member_ids"]}
    await deliver(resources, settings, tenant.name, twice=True)

    assert dict(await resources.pool.fetch(
        "SELECT member_id, tier FROM rewards.member_tiers WHERE tenant_id = $1",
        tenant.name)) == tiers
    assert dict(await resources.pool.fetch(
        "SELECT member_id, earn_multiplier FROM points.members WHERE tenant_id = $1",
        tenant.name)) == {m: 1.5 if t == "vip" else 1.0 for m, t in tiers.items()}
    expected = {rules.delivery_id(event_id, endpoint_id) for event_id in pushed}
    await hooks.pump_until(lambda: len(target.delivered_ids()) >= len(expected), timeout_s=120)
    await hooks.settle()
    assert sorted(target.delivered_ids()) == sorted(expected), "each member's, once"
    for arrival in target.arrivals:
        data = arrival.body["data"]
        event_id = next(e for e in pushed if rules.delivery_id(e, endpoint_id)
                        == arrival.webhook_id)
        assert arrival.event_type == "TierChanged" and data["member_id"] == pushed[event_id]
        assert (data["tier"], data["previous_tier"], data["earn_multiplier"]) == (
            tiers[data["member_id"]], None, 1.5 if tiers[data["member_id"]] == "vip" else 1.0)


async def test_three_failures_then_delivered_on_the_fourth_attempt(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    target = receiver(lambda _id, n: (500 if n <= 3 else 204, 0.0, {}))
    endpoint_id = await subscribe(hooks, tenant, target, ["PointsAwarded"])
    await grant(hooks, tenant)
    await deliver(resources, settings, tenant.name)
    await hooks.pump_until(lambda: any(a.verified for a in target.arrivals[3:]))
    await hooks.settle()
    [delivery] = await deliveries(hooks, tenant, endpoint_id)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 4
    assert delivery["last_status_code"] == 204 and delivery["next_attempt_at"] is None
    assert [a.webhook_id for a in target.arrivals] == [delivery["delivery_id"]] * 4
    assert delivery["last_latency_ms"] is not None


async def test_always_failing_ends_failed_then_retry_delivers_once_it_recovers(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    status = {"code": 503}
    target = receiver(lambda _id, _n: (status["code"], 0.0, {}))
    endpoint_id = await subscribe(hooks, tenant, target, ["*"])
    await grant(hooks, tenant)
    await deliver(resources, settings, tenant.name)
    await hooks.pump_until(lambda: len(target.arrivals) >= rules.MAX_ATTEMPTS)
    await hooks.settle()
    [failed] = await deliveries(hooks, tenant, endpoint_id, status="failed")
    assert failed["attempts"] == rules.MAX_ATTEMPTS and failed["last_status_code"] == 503
    assert failed["next_attempt_at"] is None
    await hooks.components.sender.pump()
    await hooks.settle()
    assert len(target.arrivals) == rules.MAX_ATTEMPTS, "a failed delivery is not sent again"

    status["code"] = 200
    retried = await hooks.client.post(
        f"{BASE}/{endpoint_id}/deliveries/{failed['delivery_id']}/retry",
        headers=tenant.headers(tenant.admin))
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    await hooks.pump_until(lambda: len(target.arrivals) > rules.MAX_ATTEMPTS)
    await hooks.settle()
    [delivered] = await deliveries(hooks, tenant, endpoint_id, status="delivered")
    assert delivered["delivery_id"] == failed["delivery_id"] and delivered["attempts"] == 1
    assert target.arrivals[-1].verified


async def test_a_slow_receiver_does_not_delay_another_endpoint(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    """Bound: every delivery to the fast endpoint within 2 s of the first send while the slow
    one (9 s a request) has its cap of 4 in flight and a fifth waiting."""
    slow = receiver(lambda _id, _n: (200, 9.0, {}))
    fast = receiver()
    slow_id = await subscribe(hooks, tenant, slow, ["PointsAwarded"])
    await subscribe(hooks, tenant, fast, ["PointsAwarded"])
    await grant(hooks, tenant, members=5)
    await deliver(resources, settings, tenant.name)
    started = time.monotonic()
    await hooks.pump_until(lambda: len(fast.arrivals) == 5, timeout_s=2)
    assert time.monotonic() - started < 2
    await asyncio.sleep(0.5)
    assert len(slow.arrivals) == settings.webhooks_endpoint_concurrency == 4
    await hooks.pump_until(lambda: len(slow.arrivals) == 5, timeout_s=30)
    await hooks.settle()
    assert slow.arrivals[-1].at - slow.arrivals[0].at >= 8.5, "the fifth waited for a slot"
    listed = await deliveries(hooks, tenant, slow_id)
    assert [d["status"] for d in listed] == ["delivered"] * 5
    assert all(d["attempts"] == 1 and d["last_latency_ms"] >= 9000 for d in listed)


async def test_redirects_are_not_followed(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    inside = receiver()
    redirecting = receiver(lambda _id, _n: (307, 0.0, {"location": inside.url}))
    endpoint_id = await subscribe(hooks, tenant, redirecting, ["PointsAwarded"])
    await grant(hooks, tenant)
    await deliver(resources, settings, tenant.name)
    await hooks.pump_until(lambda: len(redirecting.arrivals) >= 2)
    await hooks.settle()
    [delivery] = await deliveries(hooks, tenant, endpoint_id)
    assert delivery["status"] in ("pending", "failed") and delivery["last_status_code"] == 307
    assert inside.arrivals == []
    assert (await hooks.client.delete(f"{BASE}/{endpoint_id}",
                                      headers=tenant.headers(tenant.admin))).status_code == 204


async def test_a_name_resolving_to_a_private_address_at_send_time_is_not_sent_to(
        strict_hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings) -> None:
    names["rebinding.example.com"] = ["93.184.216.34"]
    created = await strict_hooks.client.post(BASE, headers=tenant.headers(tenant.admin), json={
        "url": "https://rebinding.example.com/hook", "event_types": ["*"]})
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["endpoint_id"]
    names["rebinding.example.com"] = ["10.0.0.1"]
    await grant(strict_hooks, tenant)
    await deliver(resources, settings, tenant.name)
    await strict_hooks.components.sender.pump()
    await strict_hooks.settle()
    [delivery] = await deliveries(strict_hooks, tenant, endpoint_id)
    assert delivery["attempts"] == 1 and delivery["status"] == "pending"
    assert delivery["last_status_code"] is None
    assert delivery["last_error"].startswith("target_refused")
    assert (await strict_hooks.client.delete(
        f"{BASE}/{endpoint_id}", headers=tenant.headers(tenant.admin))).status_code == 204


async def test_an_endpoint_failing_everything_for_long_is_disabled_and_recorded(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    target = receiver(lambda _id, _n: (500, 0.0, {}))
    endpoint_id = await subscribe(hooks, tenant, target, ["*"])
    # This sender disables after 0.3 s of failing (5 days in production).
    sender = Sender(resources.pool, hooks.components.endpoints, msgspec.structs.replace(
        hooks.settings, webhooks_disable_after_s=0.3))
    try:
        await grant(hooks, tenant)
        await deliver(resources, settings, tenant.name)
        admin = tenant.headers(tenant.admin)
        deadline = time.monotonic() + 20
        while (await hooks.client.get(f"{BASE}/{endpoint_id}", headers=admin)).json()[
                "enabled"]:
            assert time.monotonic() < deadline
            await sender.pump()
            await asyncio.sleep(0.02)
        await sender.drain()
    finally:
        await sender.close()
    shown = (await hooks.client.get(f"{BASE}/{endpoint_id}", headers=admin)).json()
    assert shown["disabled_reason"] == "failing"
    record = await resources.pool.fetchrow(
        "SELECT * FROM webhooks.endpoint_disabled WHERE tenant_id = $1 AND endpoint_id = $2",
        tenant.name, endpoint_id)
    assert record is not None and record["disabled_at"] - record["failing_since"] \
        >= timedelta(seconds=0.3)
    # Disabled: no new deliveries are recorded, none is sent.
    sent = len(target.arrivals)
    await grant(hooks, tenant)
    await deliver(resources, settings, tenant.name)
    await hooks.components.sender.pump()
    await hooks.settle()
    assert len(target.arrivals) == sent
    assert len(await deliveries(hooks, tenant, endpoint_id)) == 1
    enabled = await hooks.client.patch(f"{BASE}/{endpoint_id}", headers=admin,
                                       json={"enabled": True})
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None


async def test_secret_rotation_signs_with_both_secrets_for_a_day(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    target = receiver()
    endpoint_id = await subscribe(hooks, tenant, target, ["*"])
    [old] = target.secrets
    admin = tenant.headers(tenant.admin)
    rotated = await hooks.client.post(f"{BASE}/{endpoint_id}/secret/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old
    until = datetime.fromisoformat(rotated.json()["previous_expires_at"])
    assert abs(until - datetime.now(UTC) - timedelta(hours=24)) < timedelta(minutes=1)
    await grant(hooks, tenant)
    await deliver(resources, settings, tenant.name)
    await hooks.pump_until(lambda: len(target.arrivals) == 1)
    arrival = target.arrivals[0]
    assert len(arrival.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(arrival.raw, arrival.headers)

    # A day later only the new secret signs.
    await resources.pool.execute(
        "UPDATE webhooks.endpoints SET previous_expires_at = now() - interval '1 second'"
        " WHERE tenant_id = $1 AND endpoint_id = $2", tenant.name, endpoint_id)
    ping = await hooks.client.post(f"{BASE}/{endpoint_id}/test", headers=admin)
    assert ping.status_code == 200 and ping.json()["delivered"] is True, ping.text
    last = target.arrivals[-1]
    assert last.event_type == "WebhookTest"
    assert len(last.headers["webhook-signature"].split(" ")) == 1
    assert Receiver(secrets=[new]).verify(last.raw, last.headers)
    assert not Receiver(secrets=[old]).verify(last.raw, last.headers)
    shown = (await hooks.client.get(f"{BASE}/{endpoint_id}", headers=admin)).json()
    assert shown["previous_secret_expires_at"] is None


async def test_replay_sends_a_time_range_again_with_the_same_ids(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    target = receiver()
    endpoint_id = await subscribe(hooks, tenant, target, ["PointsAwarded"])
    await grant(hooks, tenant, members=3)
    await deliver(resources, settings, tenant.name)
    await hooks.pump_until(lambda: len(target.arrivals) == 3)
    await hooks.settle()
    first = sorted(target.verified_ids())
    admin = tenant.headers(tenant.admin)
    now = datetime.now(UTC)
    replayed = await hooks.client.post(f"{BASE}/{endpoint_id}/replay", headers=admin, json={
        "from": (now - timedelta(minutes=5)).isoformat(), "to": now.isoformat()})
    assert replayed.status_code == 200 and replayed.json() == {"deliveries": 3}
    await hooks.pump_until(lambda: len(target.arrivals) == 6)
    await hooks.settle()
    assert sorted(target.verified_ids()) == sorted(first * 2)
    backwards = await hooks.client.post(f"{BASE}/{endpoint_id}/replay", headers=admin, json={
        "from": now.isoformat(), "to": (now - timedelta(minutes=5)).isoformat()})
    assert backwards.status_code == 422
    naive = await hooks.client.post(f"{BASE}/{endpoint_id}/replay", headers=admin, json={
        "from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00"})
    assert naive.status_code == 422


async def test_unknown_deliveries_and_endpoints_are_404(hooks: Hooks, tenant: Tenant) -> None:
    admin = tenant.headers(tenant.admin)
    for method, path, code in (
            ("GET", f"{BASE}/ep-nope/deliveries", "unknown_endpoint"),
            ("POST", f"{BASE}/ep-nope/deliveries/msg-nope/retry", "unknown_delivery"),
            ("POST", f"{BASE}/ep-nope/test", "unknown_endpoint"),
            ("POST", f"{BASE}/ep-nope/secret/rotate", "unknown_endpoint")):
        response = await hooks.client.request(method, path, headers=admin)
        assert response.status_code == 404, (path, response.text)
        assert error_code(response) == code
    bad = await hooks.client.get(f"{BASE}/ep-nope/deliveries", headers=admin,
                                 params={"status": "lost"})
    assert bad.status_code in (400, 422)



async def test_metrics_show_outcomes_queue_depth_and_oldest_pending_age(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    target = receiver(lambda _id, _n: (500, 0.0, {}))
    endpoint_id = await subscribe(hooks, tenant, target, ["*"])
    await grant(hooks, tenant)
    await deliver(resources, settings, tenant.name)
    await asyncio.sleep(1.1)
    scraped = (await hooks.client.get("/webhooks/metrics")).text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in scraped.splitlines()
              if line.startswith("fuli_webhook")}
    assert values["fuli_webhook_queue_depth"] >= 1
    assert values["fuli_webhook_oldest_pending_age_seconds"] >= 1
    assert 'fuli_webhook_deliveries{status="delivered"}' in values
    assert (await hooks.client.delete(f"{BASE}/{endpoint_id}",
                                      headers=tenant.headers(tenant.admin))).status_code == 204


async def test_an_http_endpoint_is_not_sent_to_once_the_deployment_stops_allowing_http(
        hooks: Hooks, strict_hooks: Hooks, tenant: Tenant, resources: Resources,
        settings: Settings, receiver: StartReceiver) -> None:
    target = receiver()
    endpoint_id = await subscribe(hooks, tenant, target, ["*"])
    names["plain.example.com"] = ["93.184.216.34"]
    moved = await hooks.client.patch(f"{BASE}/{endpoint_id}", headers=tenant.headers(
        tenant.admin), json={"url": "http://plain.example.com/hook"})
    assert moved.status_code == 200, moved.text
    await grant(hooks, tenant)
    await deliver(resources, settings, tenant.name)
    # The production deployment's sender: http is no longer allowed.
    await strict_hooks.components.sender.pump()
    await strict_hooks.settle()
    [delivery] = await deliveries(hooks, tenant, endpoint_id)
    assert delivery["status"] == "pending" and delivery["last_error"].startswith(
        "validation_failed: the URL must use https")
    assert (await hooks.client.delete(f"{BASE}/{endpoint_id}",
                                      headers=tenant.headers(tenant.admin))).status_code == 204


async def test_a_backlog_drains_from_one_claim_without_waiting_for_the_next_tick(
        hooks: Hooks, tenant: Tenant, resources: Resources, settings: Settings,
        receiver: StartReceiver) -> None:
    target = receiver()
    endpoint_id = await subscribe(hooks, tenant, target, ["PointsAwarded"])
    await Points(hooks.client, tenant).grant(
        [{"member_id": uid("m"), "points": 1} for _ in range(40)])
    await deliver(resources, settings, tenant.name)
    await hooks.components.sender.pump()  # one tick: 4 sends, each ending claims the next
    await hooks.settle()
    assert len(set(target.delivered_ids())) == 40
    assert {d["status"] for d in await deliveries(hooks, tenant, endpoint_id)} == {"delivered"}
