"""Transitional: team-buy still imports ``body`` from here, where the catalog's handlers used to
be (they are in ``catalog/api.py`` now). Delete this module once team-buy uses
``services.runtime.app.replayable``, which is the same function."""

from __future__ import annotations

from services.runtime.app import replayable as body

__all__ = ["body"]
