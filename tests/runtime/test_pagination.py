"""The one cursor codec: cursors round-trip, and anything else is a 422 on ``cursor``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.runtime.errors import ValidationFailed
from services.runtime.pagination import (
    before_cursor,
    decode_cursor,
    decode_int_cursor,
    encode_cursor,
    newest_first_cursor,
)


def test_cursors_round_trip() -> None:
    assert decode_cursor(encode_cursor("a", 7), 2) == ["a", "7"]
    assert decode_int_cursor(encode_cursor(42)) == 42
    at = datetime(2026, 12, 6, 20, 5, 1, 123456, tzinfo=timezone(timedelta(hours=8)))
    assert before_cursor(newest_first_cursor(at, "r-1")) == (at.astimezone(UTC), "r-1")
    assert before_cursor(None) is None
    assert before_cursor("") is None


@pytest.mark.parametrize("cursor", [
    "!!!!",
    encode_cursor("only-one-part"),
    encode_cursor("not a time", "r-1"),
    encode_cursor("2026-12-06T12:00:00", "r-1"),         # no offset
    encode_cursor("0001-01-01T00:00:00+14:00", "r-1"),   # before year 1 in UTC
    encode_cursor("2026-02-29T00:00:00+00:00", "r-1"),   # no such day
])
def test_a_time_cursor_that_is_not_one_is_a_422(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        before_cursor(cursor)
    assert refused.value.details == {"field": "cursor"}
