"""Query parameters the rewards API's paged lists share, and the cursor of lists newest
first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar.params import Parameter

from services.runtime.errors import ValidationFailed
from services.runtime.pagination import decode_cursor, encode_cursor

PageLimit = Annotated[int, Parameter(ge=1, le=200)]
Cursor = Annotated[str | None, Parameter(max_length=200)]


def newest_first_cursor(at: datetime, key: str) -> str:
    """The cursor after the row made at ``at`` with id ``key``, in a list newest first."""
    return encode_cursor(at.isoformat(), key)


def before_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The (time, id) a ``newest_first_cursor`` names; a cursor that is not one is a 422."""
    if not cursor:
        return None
    at, key = decode_cursor(cursor, 2)
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise ValidationFailed("invalid cursor", field="cursor") from None
    if when.tzinfo is None:
        raise ValidationFailed("invalid cursor", field="cursor")
    return when, key
