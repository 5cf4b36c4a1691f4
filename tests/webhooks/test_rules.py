"""The pure rules of webhooks: signatures a Standard Webhooks library verifies, the retry
schedule, event types, URLs and the addresses a webhook may go to."""

from __future__ import annotations

import ipaddress
import time
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from proto.events import PUBLIC_EVENT_TYPES, SUBSCRIPTIONS, TierChanged, TierChanges
from services.runtime.errors import ValidationFailed
from services.webhooks import signing
from services.webhooks.deliveries import rules as deliveries
from services.webhooks.endpoints import rules


def test_signatures_verify_with_the_standardwebhooks_package() -> None:
    key = signing.deployment_key("a deployment key of some length")
    salt = signing.new_salt()
    secret = signing.secret_text(key, salt)
    body = b'{"type":"PointsAwarded","timestamp":"2026-01-01T00:00:00+00:00","data":{}}'
    now = int(time.time())
    headers = signing.headers([signing.secret_bytes(key, salt)], "msg-1", now, body)
    assert Webhook(secret).verify(body, headers) == msgspec.json.decode(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    other = signing.secret_text(key, signing.new_salt())
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


def test_during_a_rotation_both_secrets_sign_one_header() -> None:
    key = signing.deployment_key("a deployment key of some length")
    old, new = signing.new_salt(), signing.new_salt()
    body = b"{}"
    headers = signing.headers([signing.secret_bytes(key, new), signing.secret_bytes(key, old)],
                              "msg-2", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(s.startswith("v1,") for s in headers["webhook-signature"].split(" "))
    for salt in (old, new):
        Webhook(signing.secret_text(key, salt)).verify(body, headers)


def test_secrets_depend_on_the_deployment_key_and_the_salt() -> None:
    salt = signing.new_salt()
    a = signing.secret_text(signing.deployment_key("first deployment key"), salt)
    b = signing.secret_text(signing.deployment_key("other deployment key"), salt)
    assert a != b and a.startswith("whsec_")
    assert a == signing.secret_text(signing.deployment_key("first deployment key"), salt)


def test_the_retry_schedule_with_jitter_and_scale() -> None:
    assert deliveries.MAX_ATTEMPTS == 8
    lows = [deliveries.retry_delay_s(n, 1.0, 0.0) for n in range(1, 8)]
    highs = [deliveries.retry_delay_s(n, 1.0, 0.999999) for n in range(1, 8)]
    for step, low, high in zip(deliveries.RETRY_SCHEDULE_S, lows, highs, strict=True):
        assert low == pytest.approx(step * 0.9) and high == pytest.approx(step * 1.1)
    assert deliveries.retry_delay_s(8, 1.0, 0.5) is None
    assert deliveries.retry_delay_s(1, 0.001, 0.5) == pytest.approx(0.005)


def test_a_delivery_id_is_stable_and_per_endpoint() -> None:
    event = "0b6f3c1e-8d2a-4c1e-9f3b-2a1d4c5e6f70"
    assert deliveries.delivery_id(event, "ep-1") == deliveries.delivery_id(event, "ep-1")
    assert deliveries.delivery_id(event, "ep-1") != deliveries.delivery_id(event, "ep-2")


def test_the_body_is_type_timestamp_and_the_event_fields() -> None:
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    [event] = deliveries.public_events(
        "e", "PointsAwarded", b'{"type":"PointsAwarded","member_id":"m1","points":5}')
    body = msgspec.json.decode(deliveries.body(event, at))
    assert body == {"type": "PointsAwarded", "timestamp": "2026-03-01T08:00:00+00:00",
                    "data": {"member_id": "m1", "points": 5}}


def test_every_public_type_is_an_event_routed_to_the_webhooks_consumer() -> None:
    for name in PUBLIC_EVENT_TYPES:
        assert "webhooks.record_events" in [s.actor for s in SUBSCRIPTIONS[name]], name
    assert "webhooks.record_events" not in [s.actor for s in SUBSCRIPTIONS["ActionRecorded"]]


def test_a_tier_changes_event_is_pushed_as_a_tier_changed_for_each_member() -> None:
    assert "webhooks.record_events" in [s.actor for s in SUBSCRIPTIONS["TierChanges"]]
    at = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    moved = msgspec.json.encode(TierChanges(member_ids=["a", 'b"', "c"], tier="vip",
                                            previous_tier="fan", changed_at=at,
                                            earn_multiplier=1.5))
    first, again = (deliveries.public_events("0f8e7c6b-5a49-4c3d-9e1f-a2b3c4d5e6f7",
                                             "TierChanges", moved) for _ in range(2))
    other = deliveries.public_events("1f8e7c6b-5a49-4c3d-9e1f-a2b3c4d5e6f7", "TierChanges", moved)
    assert first == again, "the same ids on a redelivery"
    ids = [e.event_id for e in first + other]
    assert len(set(ids)) == 6 and all(uuid.UUID(i).version == 5 for i in ids)
    assert [e.event_type for e in first] == ["TierChanged"] * 3
    assert [msgspec.convert({"type": e.event_type, **e.fields}, TierChanged) for e in first] == [
        TierChanged(member_id=m, tier="vip", previous_tier="fan", changed_at=at,
                    earn_multiplier=1.5) for m in ["a", 'b"', "c"]]
    awarded = b'{"type":"PointsAwarded"}'
    assert deliveries.public_events("e", "PointsAwarded", awarded) == [
        deliveries.PublicEvent("e", "PointsAwarded", {})]
    assert deliveries.public_events("e", "ActionRecorded", b"{}") == []


def test_event_types() -> None:
    assert rules.event_types(["TierChanged", "TierChanged"]) == ["TierChanged"]
    assert rules.event_types(["TierChanged", "*"]) == ["*"]
    with pytest.raises(ValidationFailed):
        rules.event_types(["PurchaseRecorded"])
    assert rules.subscribes(["*"], "TierChanged")
    assert not rules.subscribes(["*"], "PurchaseRecorded")
    assert not rules.subscribes(["PointsSpent"], "TierChanged")


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.0.0.1", "private"),
    ("172.16.5.4", "private"), ("192.168.0.1", "private"), ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link_local"), ("fe80::1", "link_local"), ("fd12::1", "private"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.1", "multicast"),
    ("100.64.1.1", "not_global"), ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::7f00:1", "loopback"), ("2002:7f00:1::", "loopback"),
    ("93.184.216.34", None), ("2606:2800:220:1:248:1893:25c8:1946", None),
])
def test_refused_addresses(address: str, reason: str | None) -> None:
    assert rules.refused_address(ipaddress.ip_address(address)) == reason


def test_targets() -> None:
    assert rules.target("https://a.example.com/x?y=1", allow_http=False) == \
        ("https", "a.example.com", 443)
    assert rules.target("http://[::1]:8080/", allow_http=True) == ("http", "::1", 8080)
    for url in ("http://a.example.com/", "https://a.example.com:99999/", "mailto:x@y.z",
                "https://a..example.com/"):
        with pytest.raises(ValidationFailed):
            rules.target(url, allow_http=False)


def test_an_event_goes_to_the_endpoints_naming_its_type_or_all() -> None:
    class Sub(msgspec.Struct, frozen=True):
        endpoint_id: str
        event_types: list[str]

    subs = [Sub("a", ["TierChanged"]), Sub("b", ["*"]), Sub("c", ["PointsAwarded", "TierChanged"]),
            Sub("d", ["PointsSpent"])]
    assert deliveries.subscribers(subs, "TierChanged") == ["a", "b", "c"]
    assert deliveries.subscribers(subs, "PointsSpent") == ["b", "d"]
    assert deliveries.subscribers(subs[:1], "PointsSpent") == []
