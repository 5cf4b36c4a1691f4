"""Background work of the rewards service."""

from __future__ import annotations

from services.runtime.bus import ActorSpec, PeriodicJob

ACTORS: list[ActorSpec] = []
PERIODIC: list[PeriodicJob] = []
