"""CSV of the group list and of trends: a header line, then one line per group or period
(UTF-8, comma-separated, quoted where needed). Free text a spreadsheet would run as a formula
starts with an apostrophe; a group's labels are joined with ``|``."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime

from proto import tiers as t
from services.tiers.groups.groups import Groups
from services.tiers.groups.rules import TREND_FIGURES, csv_text
from services.tiers.groups.store import ListFilter

LIST_COLUMNS = ("group_id", "name", "tier", "kind", "owner", "tags", "parent", "status",
                "created_at", "dissolved_at", "members", "active_members_7d",
                "active_rate_7d", "stage")
TREND_COLUMNS = ("first_day", "starts_at", "ends_at", *TREND_FIGURES,
                 *(f"{name}_growth" for name in TREND_FIGURES))
PAGE = 500


def lines(rows: Iterable[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return buffer.getvalue().encode()


def list_row(item: t.GroupListItem) -> tuple[object, ...]:
    return (item.group_id, csv_text(item.name), item.tier, item.kind,
            csv_text(item.owner) if item.owner else None, "|".join(item.tags), item.parent,
            item.status, item.created_at.isoformat(),
            item.dissolved_at.isoformat() if item.dissolved_at else None, item.members,
            item.active_members_7d, item.active_rate_7d, item.stage)


async def group_list(groups: Groups, tenant_id: str, where: ListFilter, first: t.GroupList,
                     now: datetime) -> AsyncIterator[bytes]:
    """Every group matching ``where``: the ``first`` page (read before the answer starts, so a
    refusal is still an error answer), then the others a page at a time."""
    yield lines([LIST_COLUMNS])
    page = first
    while True:
        yield lines(list_row(item) for item in page.items)
        if page.next_cursor is None:
            return
        page = await groups.listing(tenant_id, where, page.next_cursor, PAGE, now)


def trend_rows(trends: t.GroupTrends) -> list[tuple[object, ...]]:
    return [(p.first_day.isoformat(), p.starts_at.isoformat(), p.ends_at.isoformat(),
             *(getattr(p, name) for name in TREND_FIGURES),
             *(getattr(p.growth, name) for name in TREND_FIGURES)) for p in trends.periods]


async def trend_lines(trends: t.GroupTrends) -> AsyncIterator[bytes]:
    yield lines([TREND_COLUMNS])
    yield lines(trend_rows(trends))
