"""HTTP handlers of member tags: tag groups, members' manual tags, bulk tagging (JSON or CSV),
the tag rules and evaluations of rule tags."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from proto import tiers as t
from proto.common import ID_PATTERN, PATTERN_END
from services.runtime.app import outcome_response, replayable
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.errors import ValidationFailed
from services.runtime.openapi import text_body
from services.tiers.tag_names import TAG_PATTERN
from services.tiers.tags.tags import Tags

TagParam = Annotated[str, Parameter(min_length=1, max_length=64, pattern=TAG_PATTERN,
                                    description="1-64 characters of [a-z0-9_:-]")]
GroupParam = Annotated[str, Parameter(min_length=1, max_length=62,
                                      pattern=r"^[a-z0-9_-]{1,62}" + PATTERN_END,
                                      description="1-62 characters of [a-z0-9_-]")]
BulkId = Annotated[str, Parameter(min_length=1, max_length=128, pattern=ID_PATTERN,
                                  description="the call's own id (idempotency)")]
CSV_BODY = ("UTF-8, one member id a line (1-10 000 of them), an optional first line "
            "`member_id`; blank lines are skipped.")
ActionParam = Annotated[t.TagAction, Parameter(description="add or remove the tag")]


class TagGroupsController(Controller):
    path = "/tag-groups"
    tags = ["tags"]

    @put("/{tag_group:str}", access=allow("operator"))
    async def put_group(self, tag_group: GroupParam, data: JSONBody[t.TagGroupBody],
                        principal: PrincipalDep, tags: NamedDependency[Tags]) -> t.TagGroup:
        """Creates or describes a tag group: tags ``<group>:<value>`` may then be set. The
        rule groups ``source`` and ``first_order_days`` are built in."""
        return await tags.put_group(principal.tenant_id, tag_group, data)

    @get("", access=allow("operator"))
    async def groups(self, principal: PrincipalDep,
                     tags: NamedDependency[Tags]) -> t.TagGroupList:
        """The rule groups and the tenant's own, with members per tag."""
        return await tags.groups(principal.tenant_id)


class MemberTagsController(Controller):
    path = "/members/{member_id:str}/tags"
    tags = ["tags"]

    @get("", access=allow("operator"))
    async def member_tags(self, member_id: PathId, principal: PrincipalDep,
                          tags: NamedDependency[Tags]) -> t.MemberTags:
        """The member's manual and rule tags."""
        return await tags.member_tags(principal.tenant_id, member_id)

    @put("/{tag:str}", access=allow("operator"))
    async def tag(self, member_id: PathId, tag: TagParam, principal: PrincipalDep,
                  tags: NamedDependency[Tags]) -> t.MemberTag:
        """Sets a manual tag; a member who has it keeps it as it is."""
        return await tags.tag(principal.tenant_id, member_id, tag, datetime.now(UTC))

    @delete("/{tag:str}", access=allow("operator"), status_code=200)
    async def untag(self, member_id: PathId, tag: TagParam, principal: PrincipalDep,
                    tags: NamedDependency[Tags]) -> t.MemberTag:
        """Removes a manual tag; answers the tag as it was."""
        return await tags.untag(principal.tenant_id, member_id, tag)


class TagBulkController(Controller):
    path = "/tags"
    tags = ["tags"]

    @post("/bulk", access=allow("operator"), status_code=201,
          responses=replayable(201, t.TagBulk))
    async def bulk(self, data: JSONBody[t.TagBulkIn], principal: PrincipalDep,
                   tags: NamedDependency[Tags]) -> Response[bytes]:
        """Adds or removes one manual tag for up to 10 000 members: all or nothing (one bad
        member id is a 422 naming it, and nothing changes), once per ``bulk_id`` (the same id
        again answers the first result; with another body it is a 409), audited."""
        return outcome_response(await tags.bulk(principal, data, datetime.now(UTC)))

    @post("/bulk/csv", access=allow("operator"), status_code=201,
          responses=replayable(201, t.TagBulk), opt=text_body("text/csv", CSV_BODY))
    async def bulk_csv(self, request: Request[Any, Any, Any], bulk_id: BulkId, tag: TagParam,
                       action: ActionParam, principal: PrincipalDep,
                       tags: NamedDependency[Tags]) -> Response[bytes]:
        """The same as ``POST /tags/bulk`` with the members as a ``text/csv`` body: one
        member id a line, an optional first line ``member_id``; a bad line is a 422 naming
        its number (``details.line``)."""
        try:
            text = (await request.body()).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationFailed("the CSV body is not UTF-8", code="bad_csv") from None
        return outcome_response(await tags.bulk_csv(principal, bulk_id, tag, action, text,
                                                    datetime.now(UTC)))

    @post("/evaluations", access=allow("admin"), status_code=200)
    async def evaluate(self, principal: PrincipalDep, tags: NamedDependency[Tags],
                       data: JSONBody[t.TagEvaluationIn | None] = None) -> t.TagEvaluation:
        """Recomputes every member's rule tags as of ``at`` (default now; never before the
        last evaluation: 409), as the daily job does."""
        return await tags.evaluate(principal.tenant_id, data.at if data else None,
                                   datetime.now(UTC))


class TagRulesController(Controller):
    path = "/tag-rules"
    tags = ["tags"]

    @put("", access=allow("admin"))
    async def put_rules(self, data: JSONBody[t.TagRules], principal: PrincipalDep,
                        tags: NamedDependency[Tags]) -> t.TagRules:
        """The thresholds of the rule tags; a rule left out keeps its defaults. The next
        hourly run re-evaluates the tenant's rule tags under them."""
        return await tags.put_rules(principal.tenant_id, data)

    @get("", access=allow("operator"))
    async def rules(self, principal: PrincipalDep, tags: NamedDependency[Tags]) -> t.TagRules:
        """The tenant's tag rules, the defaults where none were set."""
        return await tags.rules(principal.tenant_id)


CONTROLLERS = [TagGroupsController, MemberTagsController, TagBulkController,
               TagRulesController]
