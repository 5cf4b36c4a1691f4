"""Segments against the real servers: the frozen list equals the test's own set, pages and
the CSV export equal it, refresh (on demand and daily) recomputes it, and bad definitions
store nothing. Stages and tags are seeded into their tables (tests/support/segments.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.runtime.resources import Resources
from services.runtime.stack import Stack
from services.tiers.app import TiersComponents
from tests.support.api import Tenant, error_code, uid
from tests.support.segments import (
    EXAMPLE,
    Seeded,
    example_members,
    put_segment,
    segment_members,
    tenant_members,
)


async def test_the_example_segment_equals_the_seeded_set_in_pages_and_in_the_export(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded) -> None:
    expected = example_members(seeded)
    assert len(expected) == 3  # the seeds tell every condition apart
    segment_id = uid("seg")
    before = datetime.now(UTC)
    response = await put_segment(client, tenant, segment_id, EXAMPLE, name="loyal payers")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(expected)
    assert before <= datetime.fromisoformat(body["computed_at"]) <= datetime.now(UTC)

    operator = tenant.headers(tenant.operator)
    shown = (await client.get(f"/tiers/v1/segments/{segment_id}", headers=operator)).json()
    assert shown["name"] == "loyal payers" and shown["count"] == len(expected)
    assert shown["computed_at"] == body["computed_at"]
    assert shown["filter"]["tiers"] == ["member", "vip"]
    assert shown["filter"]["stages"] == ["loyal"]
    assert shown["filter"]["tags"] == {"all": [], "any": [], "none": ["dormant"]}

    listed = await segment_members(client, tenant, segment_id, limit=2)
    assert listed == sorted(expected)

    export = await client.get(f"/tiers/v1/segments/{segment_id}/export.csv", headers=operator)
    assert export.status_code == 200, export.text
    assert export.headers["content-type"].startswith("text/csv")
    assert export.text.splitlines() == ["member_id", *listed]

    segments = (await client.get("/tiers/v1/segments", headers=operator)).json()
    assert [s["segment_id"] for s in segments["items"]] == [segment_id]


def expected_for(seeded: Seeded, segment_filter: dict[str, Any]) -> set[str]:
    """The test's own evaluation of a filter over the seeds."""
    tags = segment_filter.get("tags", {})
    result = set()
    for m in seeded.members:
        if "tiers" in segment_filter and seeded.tier(m) not in segment_filter["tiers"]:
            continue
        if "stages" in segment_filter and seeded.stage_of(m) not in segment_filter["stages"]:
            continue
        if not set(tags.get("all", [])) <= seeded.tags[m]:
            continue
        if tags.get("any") and not set(tags["any"]) & seeded.tags[m]:
            continue
        if set(tags.get("none", [])) & seeded.tags[m]:
            continue
        if "groups" in segment_filter and m not in seeded.in_group:
            continue
        result.add(m)
    return result


@pytest.mark.parametrize("segment_filter", [
    {},
    {"tiers": ["fan"]},                                   # members without a tier are fans
    {"stages": ["aware"]},                                # members without a stage are aware
    {"stages": ["aware", "interested"], "tiers": ["member", "vip"]},
    {"tags": {"all": ["repurchaser", "source:wechat"]}},
    {"tags": {"any": ["preference:tea", "dormant"], "none": ["repurchaser"]}},
    {"tags": {"all": ["repurchaser"], "any": ["dormant", "preference:tea"]}},
    {"groups": ["GROUP"], "stages": ["loyal"]},
])
async def test_each_condition_selects_what_the_seeds_say(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded,
        segment_filter: dict[str, Any]) -> None:
    if "groups" in segment_filter:
        segment_filter = {**segment_filter, "groups": [seeded.group_id]}
    expected = expected_for(seeded, segment_filter)
    segment_id = uid("seg")
    response = await put_segment(client, tenant, segment_id, segment_filter)
    assert response.status_code == 200, response.text
    assert response.json()["count"] == len(expected)
    assert await segment_members(client, tenant, segment_id, limit=100) == sorted(expected)
    preview = await client.post("/tiers/v1/segments/previews",
                                headers=tenant.headers(tenant.operator),
                                json={"filter": segment_filter})
    assert preview.status_code == 200, preview.text
    assert preview.json()["count"] == len(expected)


async def test_the_list_is_frozen_until_refreshed_and_old_cursors_are_refused(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded, resources: Resources,
        stack: Stack) -> None:
    segment_id = uid("seg")
    assert (await put_segment(client, tenant, segment_id, EXAMPLE)).status_code == 200
    expected = example_members(seeded)
    operator = tenant.headers(tenant.operator)
    first = (await client.get(f"/tiers/v1/segments/{segment_id}/members", headers=operator,
                              params={"limit": 1})).json()
    # One of the segment's members turns dormant: the frozen list does not move...
    gone = sorted(expected)[-1]
    await resources.pool.execute(
        "INSERT INTO tiers.member_tags (tenant_id, member_id, tag, source, since)"
        " VALUES ($1, $2, 'dormant', 'rule', now())", tenant.name, gone)
    assert await segment_members(client, tenant, segment_id) == sorted(expected)
    # ...until it is refreshed.
    refreshed = await client.post(f"/tiers/v1/segments/{segment_id}/refresh", headers=operator)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["count"] == len(expected) - 1
    assert await segment_members(client, tenant, segment_id) == sorted(expected - {gone})
    stale = await client.get(f"/tiers/v1/segments/{segment_id}/members", headers=operator,
                             params={"limit": 1, "cursor": first["next_cursor"]})
    assert stale.status_code == 409 and error_code(stale) == "segment_recomputed"

    # The daily refresh recomputes segments not computed yet on the tenant's local day.
    await resources.pool.execute(
        "DELETE FROM tiers.member_tags WHERE tenant_id = $1 AND member_id = $2"
        " AND tag = 'dormant'", tenant.name, gone)
    segments = stack.host.components("tiers", TiersComponents).segments
    await segments.refresh_due(datetime.now(UTC))  # computed today already: nothing moves
    assert await segment_members(client, tenant, segment_id) == sorted(expected - {gone})
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert await segments.refresh_due(tomorrow) >= 1
    shown = (await client.get(f"/tiers/v1/segments/{segment_id}", headers=operator)).json()
    assert datetime.fromisoformat(shown["computed_at"]) == tomorrow
    assert await segment_members(client, tenant, segment_id) == sorted(expected)


async def test_delete_removes_the_segment_and_its_list(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded,
        resources: Resources) -> None:
    segment_id = uid("seg")
    assert (await put_segment(client, tenant, segment_id, EXAMPLE)).status_code == 200
    operator = tenant.headers(tenant.operator)
    deleted = await client.delete(f"/tiers/v1/segments/{segment_id}", headers=operator)
    assert deleted.status_code == 204
    for path in ("", "/members", "/export.csv"):
        response = await client.get(f"/tiers/v1/segments/{segment_id}{path}",
                                    headers=operator)
        assert response.status_code == 404 and error_code(response) == "unknown_segment"
    assert await resources.pool.fetchval(
        "SELECT count(*) FROM tiers.segment_members WHERE tenant_id = $1",
        tenant.name) == 0
    again = await client.delete(f"/tiers/v1/segments/{segment_id}", headers=operator)
    assert again.status_code == 404


@pytest.mark.parametrize(("segment_filter", "status", "code"), [
    ({"stages": ["loyal", "sleeping"]}, 422, "validation_failed"),     # unknown stage
    ({"tags": {"none": ["Dormant"]}}, 422, "validation_failed"),       # bad tag name
    ({"tags": {"any": ["x" * 65]}}, 422, "validation_failed"),         # too long
    ({"tags": {"all": ["taste:sweet"]}}, 422, "unknown_tag_group"),    # unknown group
    ({"tiers": ["member", "gold"]}, 422, "unknown_tier"),
    ({"groups": ["no-such-group"]}, 422, "unknown_group"),
    ({"value": {"min": 1}}, 409, "no_value_model"),
    ({"koc": True}, 409, "no_value_model"),
    ({"tiers": []}, 422, "validation_failed"),
    ({"colour": "red"}, 422, "validation_failed"),                     # unknown field
])
async def test_bad_definitions_are_refused_and_store_nothing(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded, resources: Resources,
        segment_filter: dict[str, Any], status: int, code: str) -> None:
    kept = uid("seg")
    assert (await put_segment(client, tenant, kept, EXAMPLE, name="kept")).status_code == 200
    before = await _segment_rows(resources, tenant)
    for segment_id in (uid("seg"), kept):  # a new segment, and over an existing one
        response = await put_segment(client, tenant, segment_id, segment_filter, name="bad")
        assert response.status_code == status, response.text
        assert error_code(response) == code
    preview = await client.post("/tiers/v1/segments/previews",
                                headers=tenant.headers(tenant.operator),
                                json={"filter": segment_filter})
    assert preview.status_code == status and error_code(preview) == code
    assert await _segment_rows(resources, tenant) == before


async def test_a_tag_group_known_to_the_tenant_or_built_in_is_accepted(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded) -> None:
    segment_filter = {"tags": {"any": ["preference:tea", "source:wechat",
                                       "first_order_days:0-7"]}}
    response = await put_segment(client, tenant, uid("seg"), segment_filter)
    assert response.status_code == 200, response.text
    assert response.json()["count"] == len(expected_for(seeded, segment_filter))


async def _segment_rows(resources: Resources, tenant: Tenant) -> list[tuple[Any, ...]]:
    rows = await resources.pool.fetch(
        "SELECT s.segment_id, s.name, s.filter::text, s.member_count, s.computed_at,"
        " (SELECT array_agg(member_id ORDER BY member_id) FROM tiers.segment_members sm"
        "  WHERE sm.tenant_id = s.tenant_id AND sm.segment_id = s.segment_id)"
        " FROM tiers.segments s WHERE s.tenant_id = $1 ORDER BY s.segment_id", tenant.name)
    return [tuple(row) for row in rows]


VALUE_MODEL = {"window_days": 30, "high_value_line": 1, "actions": {
    "purchase": {"category": "consumption", "per_100_cents": 0.01}}}


async def test_value_ranges_and_kocs_follow_the_value_model(
        client: httpx.AsyncClient, tenant: Tenant, seeded: Seeded) -> None:
    response = await client.put("/tiers/v1/value-model", headers=tenant.headers(tenant.admin),
                                json=VALUE_MODEL)
    assert response.status_code == 200, response.text
    # Every purchase was made today: score = spend x 0.01 / 100; no purchase scores 0.
    score = {m: (seeded.spend[m] or 0) * 0.01 / 100 for m in seeded.members}
    in_range = {m for m in seeded.members if 4 <= score[m] <= 15}
    # KOCs: the top ceil(1% of 11 known members) = 1 member by score, ties by member id.
    top = sorted(seeded.members, key=lambda m: (-score[m], m))[0]
    for segment_filter, expected in (
            ({"value": {"min": 4, "max": 15}}, in_range),
            ({"value": {"max": 0}}, {m for m in seeded.members if score[m] == 0}),
            ({"koc": True}, {top}),
            ({"koc": False, "tiers": ["vip"]}, {m for m in seeded.members
                                                 if seeded.tier(m) == "vip"} - {top})):
        segment_id = uid("seg")
        response = await put_segment(client, tenant, segment_id, segment_filter)
        assert response.status_code == 200, response.text
        assert await segment_members(client, tenant, segment_id, limit=100) == sorted(expected)


async def test_a_large_export_streams_every_member_once_in_order(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources) -> None:
    await tenant_members(resources, tenant, 12_345)  # more than two chunks of the cursor
    segment_id = uid("seg")
    assert (await put_segment(client, tenant, segment_id, {})).json()["count"] == 12_345
    export = await client.get(f"/tiers/v1/segments/{segment_id}/export.csv",
                              headers=tenant.headers(tenant.operator))
    assert export.status_code == 200
    assert export.text.splitlines() == ["member_id", *sorted(
        f"bulk-{i}" for i in range(1, 12_346))]
    assert await segment_members(client, tenant, segment_id, limit=10_000) == sorted(
        f"bulk-{i}" for i in range(1, 12_346))
