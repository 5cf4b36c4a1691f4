"""Ids derived from other ids, so that every step of a multi-step operation (a hold, a grant, a
move in the points service) has the same id however often it is retried."""

from __future__ import annotations

import hashlib


def digest(*parts: str) -> str:
    """40 hex characters identifying ``parts`` (joined by the unit separator)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
