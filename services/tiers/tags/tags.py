"""Member tags: tag groups, manual tags (one member, or up to 10 000 in one audited,
idempotent, all-or-nothing call) and rule tags, recomputed for the whole tenant in one SQL
pass daily and on demand."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from proto import tiers as t
from services.runtime.auth import Principal
from services.runtime.db import Conn, Pool
from services.runtime.errors import Conflict, NotFound
from services.runtime.idempotency import Outcome, run_once
from services.tiers.tag_names import tag_group
from services.tiers.tags import rules, store
from services.tiers.times import tenant_day

log = logging.getLogger("fuli.tiers.tags")
BULK_SCOPE = "tiers.tag_bulks"


class Tags:
    """The tenant's tag groups, members' tags and rule tags."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    # --- tag groups ------------------------------------------------------------------------

    async def put_group(self, tenant_id: str, group: str, body: t.TagGroupBody) -> t.TagGroup:
        rules.check_group_name(group)
        row = await store.put_group(self.pool, tenant_id, group, body.description)
        counts = [c for c in await store.grouped_tag_counts(self.pool, tenant_id)
                  if c.tag_group == group]
        return t.TagGroup(tag_group=row.tag_group, description=row.description, rule=False,
                          tags=[t.TagCount(tag=c.tag, members=c.members) for c in counts])

    async def groups(self, tenant_id: str) -> t.TagGroupList:
        """The built-in rule groups and the tenant's own, each with members per tag."""
        counts: dict[str, list[t.TagCount]] = {}
        for c in await store.grouped_tag_counts(self.pool, tenant_id):
            counts.setdefault(c.tag_group, []).append(t.TagCount(tag=c.tag, members=c.members))
        items = [t.TagGroup(tag_group=name, description=description, rule=True,
                            tags=counts.get(name, []))
                 for name, description in rules.RULE_GROUP_DESCRIPTIONS.items()]
        items += [t.TagGroup(tag_group=g.tag_group, description=g.description, rule=False,
                             tags=counts.get(g.tag_group, []))
                  for g in await store.groups(self.pool, tenant_id)]
        return t.TagGroupList(items=items)

    # --- manual tags -----------------------------------------------------------------------

    async def member_tags(self, tenant_id: str, member_id: str) -> t.MemberTags:
        return t.MemberTags(member_id=member_id,
                            items=await store.member_tags(self.pool, tenant_id, member_id))

    async def tag(self, tenant_id: str, member_id: str, tag: str,
                  now: datetime) -> t.MemberTag:
        """Tags one member; a member who has the tag keeps it (and its since)."""
        rules.check_member(member_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._check_manual_tag(conn, tenant_id, tag)
            await store.add_manual(conn, tenant_id, [member_id], tag, now)
            found = await store.member_tag(conn, tenant_id, member_id, tag)
        assert found is not None
        return found

    async def untag(self, tenant_id: str, member_id: str, tag: str) -> t.MemberTag:
        """Removes a manual tag from one member; the tag as it was."""
        rules.check_member(member_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._check_manual_tag(conn, tenant_id, tag)
            found = await store.member_tag(conn, tenant_id, member_id, tag)
            if found is None:
                raise NotFound(f"{member_id!r} has no tag {tag!r}", code="tag_not_set")
            await store.remove_manual(conn, tenant_id, [member_id], tag)
        return found

    async def bulk(self, principal: Principal, body: t.TagBulkIn, now: datetime) -> Outcome:
        """A JSON bulk tagging (see ``_bulk``)."""
        return await self._bulk(principal, body.bulk_id, body.tag, body.action,
                                rules.listed_members(body.member_ids), now)

    async def bulk_csv(self, principal: Principal, bulk_id: str, tag: str, action: t.TagAction,
                       text: str, now: datetime) -> Outcome:
        """A CSV bulk tagging (see ``_bulk``)."""
        return await self._bulk(principal, bulk_id, tag, action, rules.csv_members(text), now)

    async def _bulk(self, principal: Principal, bulk_id: str, tag: str, action: t.TagAction,
                    members: list[str], now: datetime) -> Outcome:
        """Adds or removes one manual tag for up to 10 000 members in one statement, all or
        nothing, once per ``bulk_id`` (the same id again answers the first result; with
        another tag, action or member list it is a 409), audited."""
        tenant_id = principal.tenant_id

        async def effect(tx: Conn) -> tuple[int, t.TagBulk]:
            await self._check_manual_tag(tx, tenant_id, tag)
            if action == "add":
                changed = await store.add_manual(tx, tenant_id, members, tag, now)
            else:
                changed = await store.remove_manual(tx, tenant_id, members, tag)
            await store.audit_bulk(tx, tenant_id, bulk_id, tag, action, len(members), changed,
                                   principal.key_id, principal.role, now)
            return 201, t.TagBulk(bulk_id=bulk_id, tag=tag, action=action,
                                  member_count=len(members), changed=changed, at=now)

        async with self.pool.acquire() as conn:
            return await run_once(conn, tenant_id=tenant_id, scope=BULK_SCOPE, key=bulk_id,
                                  request={"tag": tag, "action": action, "members": members},
                                  effect=effect)

    async def _check_manual_tag(self, conn: Conn, tenant_id: str, tag: str) -> None:
        group = tag_group(tag)
        known = [group] if group and await store.group_exists(conn, tenant_id, group) else []
        rules.check_manual_tag(tag, known)

    # --- rule tags -------------------------------------------------------------------------

    async def put_rules(self, tenant_id: str, body: t.TagRules) -> t.TagRules:
        rules.check_rules(body)
        await store.put_rules(self.pool, tenant_id, body)
        return body

    async def rules(self, tenant_id: str) -> t.TagRules:
        """The tenant's rules; the defaults when none were set."""
        row = await store.rules(self.pool, tenant_id)
        return row.rules if row else t.TagRules()

    async def evaluate(self, tenant_id: str, at: datetime | None,
                       now: datetime) -> t.TagEvaluation:
        """Recomputes every known member's rule tags as of ``at`` (default now) in one SQL
        pass; never as of a time before the last evaluation."""
        async with self.pool.acquire() as conn, conn.transaction():
            last = await store.lock_evaluation(conn, tenant_id)
            moment = rules.evaluation_moment(at, now, last.evaluated_at if last else None)
            row = await store.rules(conn, tenant_id)
            tag_rules = row.rules if row else t.TagRules()
            starts, labels = rules.buckets(tag_rules.first_order_days.edges)
            computed = await store.compute_rule_tags(conn, tenant_id, moment, tag_rules,
                                                     starts, labels)
            day = await tenant_day(conn, tenant_id, moment)
            await store.save_evaluation(conn, tenant_id, moment, day, computed)
        return t.TagEvaluation(at=moment, day=day, members=computed.members,
                               rule_tags=computed.rule_tags, added=computed.added,
                               removed=computed.removed)

    async def evaluate_due(self) -> None:
        """The periodic job: tenants whose rule tags were last evaluated before their local
        today (or never), or whose rules changed since, evaluated now."""
        for tenant_id in await store.tenants_due(self.pool, datetime.now(UTC)):
            try:
                done = await self.evaluate(tenant_id, None, datetime.now(UTC))
            except Conflict as refused:  # evaluated as of a later time meanwhile
                log.info("rule tags not evaluated", extra={"fields": {
                    "tenant": tenant_id, "reason": refused.message}})
                continue
            log.info("rule tags evaluated", extra={"fields": {
                "tenant": tenant_id, "members": done.members, "added": done.added,
                "removed": done.removed}})
