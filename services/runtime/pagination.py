"""The one cursor codec: a cursor is the URL-safe base64 (unpadded) of its parts joined by the
unit separator. Cursors are opaque to clients; each list decides what its parts mean."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from services.runtime.errors import ValidationFailed

SEPARATOR = "\x1f"


def encode_cursor(*parts: str | int) -> str:
    text = SEPARATOR.join(str(part) for part in parts)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """The ``parts`` strings of a cursor; a cursor that is not one is a 422 on ``cursor``."""
    try:
        text = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed("invalid cursor", field="cursor") from None
    values = text.split(SEPARATOR)
    if len(values) != parts or not all(values):
        raise ValidationFailed("invalid cursor", field="cursor")
    return values


def decode_int_cursor(cursor: str, *, minimum: int = 0) -> int:
    """A cursor of one whole number at least ``minimum``."""
    [text] = decode_cursor(cursor, 1)
    if not text.isdigit() or len(text) > 18 or int(text) < minimum:
        raise ValidationFailed("invalid cursor", field="cursor")
    return int(text)


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
        if when.tzinfo is None:
            raise ValueError(at)
        return when.astimezone(UTC), key
    except (ValueError, OverflowError):  # not a time with an offset, or before year 1 in UTC
        raise ValidationFailed("invalid cursor", field="cursor") from None
