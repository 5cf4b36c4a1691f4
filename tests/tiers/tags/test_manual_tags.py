"""Manual tags: one member at a time, bulk for 10 000 members in one call (JSON and CSV), all
or nothing, idempotent on the bulk id, audited; tag groups; bad input stores nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx

from services.runtime.resources import Resources
from services.runtime.tenants import key_id_of
from tests.support.api import Tenant, error_code, uid

ESCROW = "pool:" + "ab" * 20


class TagsApi:
    def __init__(self, client: httpx.AsyncClient, tenant: Tenant,
                 resources: Resources) -> None:
        self.client = client
        self.tenant = tenant
        self.pool = resources.pool
        self.operator = tenant.headers(tenant.operator)

    async def put_group(self, group: str, description: str = "") -> httpx.Response:
        return await self.client.put(f"/tiers/v1/tag-groups/{group}", headers=self.operator,
                                     json={"description": description})

    async def bulk(self, tag: str, member_ids: list[str], action: str = "add",
                   bulk_id: str | None = None) -> httpx.Response:
        return await self.client.post("/tiers/v1/tags/bulk", headers=self.operator, json={
            "bulk_id": bulk_id or uid("bulk"), "tag": tag, "action": action,
            "member_ids": member_ids})

    async def bulk_csv(self, tag: str, text: str, action: str = "add",
                       bulk_id: str | None = None) -> httpx.Response:
        return await self.client.post(
            "/tiers/v1/tags/bulk/csv", content=text.encode(),
            headers={**self.operator, "Content-Type": "text/csv"},
            params={"bulk_id": bulk_id or uid("bulk"), "tag": tag, "action": action})

    async def tagged(self, tag: str) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT member_id FROM tiers.member_tags WHERE tenant_id = $1 AND tag = $2",
            self.tenant.name, tag)
        return {r["member_id"] for r in rows}

    async def all_tags(self) -> list[tuple[Any, ...]]:
        rows = await self.pool.fetch(
            "SELECT member_id, tag, source, since FROM tiers.member_tags WHERE tenant_id = $1"
            " ORDER BY member_id, tag", self.tenant.name)
        return [tuple(r) for r in rows]

    async def audit(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT bulk_id, tag, action, member_count, changed, key_id, role, at"
            " FROM tiers.tag_audit WHERE tenant_id = $1 ORDER BY at, bulk_id", self.tenant.name)
        return [dict(r) for r in rows]


async def test_bulk_tags_ten_thousand_members_all_or_nothing_once_and_audited(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources) -> None:
    tags = TagsApi(client, tenant, resources)
    assert (await tags.put_group("campaign", "spring campaigns")).status_code == 200
    members = [f"member-{i:05d}" for i in range(10_000)]

    # One bad id (or an escrow account) among 10 000: 422 naming it, and nothing stored.
    bad = [*members[:4321], "not an id", *members[4322:]]
    refused = await tags.bulk("campaign:spring", bad)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"]["field"] == "member_ids[4321]"
    escrow = [*members[:9999], ESCROW]
    refused = await tags.bulk("campaign:spring", escrow)
    assert refused.status_code == 422 and error_code(refused) == "bad_member_id"
    assert refused.json()["error"]["details"]["index"] == 9999
    too_many = await tags.bulk("campaign:spring", [*members, "member-x"])
    assert too_many.status_code == 422
    assert await tags.all_tags() == []

    bulk_id = uid("bulk")
    started = time.perf_counter()
    done = await tags.bulk("campaign:spring", members, bulk_id=bulk_id)
    elapsed = time.perf_counter() - started
    assert done.status_code == 201, done.text
    body = done.json()
    assert body["member_count"] == 10_000 and body["changed"] == 10_000
    assert await tags.tagged("campaign:spring") == set(members)
    print(f"bulk tagging of 10 000 members: {elapsed * 1000:.0f} ms")

    # The same id again changes nothing and answers the first result; another body is a 409.
    rows = await tags.all_tags()
    again = await tags.bulk("campaign:spring", members, bulk_id=bulk_id)
    assert again.status_code == 201 and again.json() == body
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await tags.bulk("campaign:spring", members[:10], bulk_id=bulk_id)
    assert other.status_code == 409 and error_code(other) == "idempotency_conflict"
    assert await tags.all_tags() == rows

    # Members who have the tag keep it as it was: 10 more members, only they are new.
    more = [f"member-{i:05d}" for i in range(9_990, 10_010)]
    grown = await tags.bulk("campaign:spring", more)
    assert grown.status_code == 201 and grown.json()["changed"] == 10
    assert await tags.tagged("campaign:spring") == set(members) | set(more)

    # CSV: an optional header, one id a line; a bad line is refused by its number.
    csv_ids = [f"csv-{i:05d}" for i in range(10_000)]
    lines = ["member_id", *csv_ids]
    lines[4000] = "pool:" + "cd" * 20
    refused = await tags.bulk_csv("campaign:autumn", "\n".join(lines) + "\n")
    assert refused.status_code == 422 and error_code(refused) == "bad_member_id"
    assert refused.json()["error"]["details"]["line"] == 4001
    two_cells = await tags.bulk_csv("campaign:autumn", "member_id\na,b\n")
    assert two_cells.status_code == 422 and two_cells.json()["error"]["details"]["line"] == 2
    for text, line in [("a\rb\n", 1), ("ok\n" + "x" * 200_000, 2), ('ok\n"b\nc"', 2)]:
        odd = await tags.bulk_csv("campaign:autumn", text)
        assert odd.status_code == 422 and odd.json()["error"]["details"]["line"] == line
    not_utf8 = await client.post("/tiers/v1/tags/bulk/csv", content=b"\xff\xfe\x00",
                                 headers={**tags.operator, "Content-Type": "text/csv"},
                                 params={"bulk_id": uid("bulk"), "tag": "campaign:autumn",
                                         "action": "add"})
    assert not_utf8.status_code == 422 and error_code(not_utf8) == "bad_csv"
    assert await tags.tagged("campaign:autumn") == set()
    csv_id = uid("bulk")
    text = "member_id\r\n" + "\r\n".join(csv_ids) + "\r\n"
    from_csv = await tags.bulk_csv("campaign:autumn", text, bulk_id=csv_id)
    assert from_csv.status_code == 201, from_csv.text
    assert from_csv.json()["member_count"] == 10_000
    assert await tags.tagged("campaign:autumn") == set(csv_ids)
    replay = await tags.bulk_csv("campaign:autumn", text, bulk_id=csv_id)
    assert replay.status_code == 201 and replay.json() == from_csv.json()
    # The same members as JSON under the CSV call's id are the same request.
    as_json = await tags.bulk("campaign:autumn", csv_ids, bulk_id=csv_id)
    assert as_json.status_code == 201 and as_json.json() == from_csv.json()
    headerless = await tags.bulk_csv("campaign:autumn", "csv-00000\ncsv-00001", "remove")
    assert headerless.status_code == 201 and headerless.json()["changed"] == 2

    # Removal in bulk.
    removed = await tags.bulk("campaign:spring", members[:5000], "remove")
    assert removed.status_code == 201 and removed.json()["changed"] == 5000
    assert await tags.tagged("campaign:spring") == set(members[5000:]) | set(more)

    audit = await tags.audit()
    assert [(a["tag"], a["action"], a["member_count"], a["changed"]) for a in audit] == [
        ("campaign:spring", "add", 10_000, 10_000), ("campaign:spring", "add", 20, 10),
        ("campaign:autumn", "add", 10_000, 10_000), ("campaign:autumn", "remove", 2, 2),
        ("campaign:spring", "remove", 5000, 5000)]
    assert audit[0]["bulk_id"] == bulk_id and audit[2]["bulk_id"] == csv_id
    assert {(a["key_id"], a["role"]) for a in audit} == {(key_id_of(tenant.operator),
                                                          "operator")}

    groups = await client.get("/tiers/v1/tag-groups", headers=tags.operator)
    campaign = next(g for g in groups.json()["items"] if g["tag_group"] == "campaign")
    assert campaign == {"tag_group": "campaign", "description": "spring campaigns",
                        "rule": False, "tags": [
                            {"tag": "campaign:autumn", "members": 9_998},
                            {"tag": "campaign:spring", "members": 5_010}]}


async def test_manual_tags_of_one_member(client: httpx.AsyncClient, tenant: Tenant,
                                         resources: Resources) -> None:
    tags = TagsApi(client, tenant, resources)
    member = uid("m")
    path = f"/tiers/v1/members/{member}/tags"
    assert (await tags.put_group("preference")).status_code == 200
    first = await client.put(f"{path}/vip", headers=tags.operator)
    assert first.status_code == 200, first.text
    assert first.json()["tag"] == "vip" and first.json()["source"] == "manual"
    again = await client.put(f"{path}/vip", headers=tags.operator)
    assert again.json() == first.json()  # kept as it was, since included
    pref = await client.put(f"{path}/preference:tea", headers=tags.operator)
    assert pref.status_code == 200
    listed = await client.get(path, headers=tags.operator)
    assert listed.json() == {"member_id": member, "items": [pref.json(), first.json()]}
    gone = await client.delete(f"{path}/vip", headers=tags.operator)
    assert gone.status_code == 200 and gone.json() == first.json()
    missing = await client.delete(f"{path}/vip", headers=tags.operator)
    assert missing.status_code == 404 and error_code(missing) == "tag_not_set"
    listed = await client.get(path, headers=tags.operator)
    assert listed.json()["items"] == [pref.json()]
    # A tagged member is a member the service knows.
    assert await resources.pool.fetchval(
        "SELECT count(*) FROM tiers.members WHERE tenant_id = $1 AND member_id = $2",
        tenant.name, member) == 1
    ingest = await client.put(f"{path}/vip", headers=tenant.headers(tenant.ingest))
    assert ingest.status_code == 403


async def test_bad_tags_and_groups_are_refused_and_store_nothing(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources) -> None:
    tags = TagsApi(client, tenant, resources)
    member = uid("m")
    path = f"/tiers/v1/members/{member}/tags"
    for tag, code in [("VIP", "validation_failed"), ("a" * 65, "validation_failed"),
                      ("tea%20time", "validation_failed"), ("caf%C3%A9", "validation_failed"),
                      ("unknown:x", "unknown_tag_group"), ("source:web", "rule_tag_group"),
                      ("first_order_days:0", "rule_tag_group"), ("dormant", "rule_tag"),
                      ("repurchaser", "rule_tag"), ("coupon_lover", "rule_tag"),
                      ("new_member", "rule_tag")]:
        response = await client.put(f"{path}/{tag}", headers=tags.operator)
        assert response.status_code == 422, (tag, response.text)
        assert error_code(response) == code, tag
    escrow = await client.put(f"/tiers/v1/members/{ESCROW}/tags/vip", headers=tags.operator)
    assert escrow.status_code == 422 and error_code(escrow) == "bad_member_id"
    for tag, code in [("Bad Tag", "validation_failed"), ("x" * 65, "validation_failed"),
                      ("nogroup:x", "unknown_tag_group"), ("source:web", "rule_tag_group"),
                      ("dormant", "rule_tag")]:
        bulk_id = uid("bulk")
        response = await tags.bulk(tag, [member, uid("m")], bulk_id=bulk_id)
        assert response.status_code == 422, (tag, response.text)
        assert error_code(response) == code, tag
        response = await tags.bulk_csv(tag, f"{member}\n", bulk_id=bulk_id)
        assert response.status_code == 422, (tag, response.text)
        # A refused call leaves its id free.
        fine = await tags.bulk("fine", [member], bulk_id=bulk_id)
        assert fine.status_code == 201, fine.text
        assert (await tags.bulk("fine", [member], "remove")).status_code == 201
    for group, code in [("source", "rule_tag_group"), ("first_order_days", "rule_tag_group"),
                        ("Bad", "validation_failed"), ("a:b", "validation_failed")]:
        response = await tags.put_group(group)
        assert response.status_code == 422, (group, response.text)
        assert error_code(response) == code, group
    unknown_field = await client.put("/tiers/v1/tag-groups/ok", headers=tags.operator,
                                     json={"description": "x", "colour": "red"})
    assert unknown_field.status_code == 422
    assert await tags.all_tags() == []
    assert await resources.pool.fetchval(
        "SELECT count(*) FROM tiers.tag_groups WHERE tenant_id = $1", tenant.name) == 0

    admin = tenant.headers(tenant.admin)
    for rules in [{"first_order_days": {"edges": [7, 7]}},
                  {"first_order_days": {"edges": [30, 7]}},
                  {"first_order_days": {"edges": []}},
                  {"coupon_lover": {"share": 0}}, {"coupon_lover": {"share": 1.5}},
                  {"repurchaser": {"purchases": 0}}, {"dormant": {"days": 0}},
                  {"new_member": {"days": 30, "extra": 1}}, {"sleepy": {}}]:
        response = await client.put("/tiers/v1/tag-rules", headers=admin, json=rules)
        assert response.status_code == 422, (rules, response.text)
    operator_put = await client.put("/tiers/v1/tag-rules", headers=tags.operator, json={})
    assert operator_put.status_code == 403
    assert await resources.pool.fetchval(
        "SELECT count(*) FROM tiers.tag_rules WHERE tenant_id = $1", tenant.name) == 0
    evaluation = await client.post("/tiers/v1/tags/evaluations", headers=tags.operator)
    assert evaluation.status_code == 403
    future = await client.post("/tiers/v1/tags/evaluations", headers=admin,
                               json={"at": "2999-01-01T00:00:00+08:00"})
    assert future.status_code == 422
    assert await resources.pool.fetchval(
        "SELECT count(*) FROM tiers.tag_evaluations WHERE tenant_id = $1", tenant.name) == 0
