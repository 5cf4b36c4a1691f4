"""The RFC 3339 patterns of the contract: every real calendar day, 29 February in leap years
only, and the years clients may send."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from services.runtime.times import (
    ANSWERED_DATE_TIME_PATTERN,
    DATE_PATTERN,
    DATE_TIME_PATTERN,
    EARLIEST_YEAR,
    LATEST_YEAR,
)


def test_29_february_is_a_date_in_leap_years_only() -> None:
    for year in range(1, 10_000):
        leap_day = f"{year:04d}-02-29"
        leap = calendar.isleap(year)
        assert bool(re.match(DATE_PATTERN, leap_day)) is leap, year
        moment = leap_day + "T12:00:00+08:00"
        assert bool(re.match(ANSWERED_DATE_TIME_PATTERN, moment)) is leap, year
        sendable = leap and EARLIEST_YEAR <= year <= LATEST_YEAR
        assert bool(re.match(DATE_TIME_PATTERN, moment)) is sendable, year


def test_every_day_of_a_span_of_years_matches_and_no_other_does() -> None:
    day = date(2023, 1, 1)
    while day < date(2030, 1, 1):
        assert re.match(DATE_TIME_PATTERN, f"{day.isoformat()}T00:00:00Z"), day
        day += timedelta(days=1)
    for impossible in ("2026-02-30", "2026-04-31", "2026-13-01", "2026-00-10", "2026-06-00"):
        assert not re.match(DATE_PATTERN, impossible), impossible
