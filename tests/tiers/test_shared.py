"""Pure pieces at the root of the tiers service (no servers): the group an activity event
names, and the moments reads are about."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.runtime.errors import ValidationFailed
from services.tiers.activity import group_of
from services.tiers.times import as_of, local_day

NOW = datetime(2026, 10, 5, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(("attributes", "group"), [
    ({"group_id": "g1"}, "g1"), ({"group_id": 42}, "42"), ({}, None),
    ({"group_id": True}, None), ({"group_id": ""}, None), ({"group_id": "x" * 128}, "x" * 128),
    ({"group_id": "x" * 129}, None), ({"group_id": ["g1"]}, None), ({"group_id": 1.5}, None)])
def test_group_of_takes_short_ids_only(attributes: dict[str, Any], group: str | None) -> None:
    assert group_of(attributes) == group


def test_as_of_needs_an_offset_and_defaults_to_now() -> None:
    assert as_of(None, NOW) == NOW
    given = datetime.fromisoformat("2026-10-01T08:00:00+08:00")
    assert as_of(given, NOW) is given
    with pytest.raises(ValidationFailed):
        as_of(datetime(2026, 10, 1, 8), NOW)


def test_local_day_is_the_tenant_calendar_day() -> None:
    assert local_day(NOW, "Asia/Shanghai") == date(2026, 10, 6)
    assert local_day(NOW, "UTC") == date(2026, 10, 5)
    assert local_day(NOW, "America/Los_Angeles") == date(2026, 10, 5)
