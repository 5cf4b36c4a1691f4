"""Transitional: red packets still import ``refusal`` from here, where redemptions used to be
(they are in ``catalog/redemptions.py`` now). Delete this module once red packets raise
``services.rewards.refusals.refused`` and store ``Outcome.refused``."""

from __future__ import annotations

from typing import Any

from services.rewards.refusals import refused
from services.runtime.idempotency import Outcome


def refusal(code: str, **details: Any) -> tuple[int, bytes]:
    """The stored (status, body) of the refusal ``code``."""
    outcome = Outcome.refused(refused(code, **details))
    return outcome.status_code, outcome.body
