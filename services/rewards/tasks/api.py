"""HTTP handlers of tasks: definitions, members' tasks and claims, operators' figures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from proto import tasks as tk
from proto.common import PATTERN_END
from services.rewards.tasks import rules
from services.rewards.tasks.tasks import Tasks
from services.runtime.app import outcome_response, replayable
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.ratelimit import WRITE

# Any kind's period; the task's own kind is checked once the task is read.
PERIOD_PATTERN = "^(" + "|".join(dict.fromkeys(
    pattern for pattern, _ in rules.PERIOD_FORMATS.values())) + ")" + PATTERN_END
PeriodParam = Annotated[str | None, Parameter(
    min_length=4, max_length=10, pattern=PERIOD_PATTERN,
    description="a local day (2026-12-06; a streak's first day), an ISO week (2026-W49), a "
                "month (2026-12) or once; every period when left out")]


class TasksController(Controller):
    tags = ["tasks"]

    @put("/tasks/{task_id:str}", access=allow("operator"))
    async def put_task(self, task_id: PathId, data: JSONBody[tk.TaskIn],
                       principal: PrincipalDep, tasks: NamedDependency[Tasks]) -> tk.Task:
        """Creates or replaces a task; every change is kept in the audit log. Refused with 422
        and nothing stored: unknown_action, unknown_box, unknown_sku, unknown_task (``after``),
        chain_cycle, and validation_failed (streak_days, window, empty reward)."""
        return await tasks.put_task(principal.tenant_id, task_id, data, principal.key_id)

    @get("/tasks", access=allow("operator"))
    async def list_tasks(self, principal: PrincipalDep,
                         tasks: NamedDependency[Tasks]) -> tk.TaskList:
        return await tasks.tasks(principal.tenant_id)

    @get("/tasks/{task_id:str}", access=allow("operator"))
    async def get_task(self, task_id: PathId, principal: PrincipalDep,
                       tasks: NamedDependency[Tasks]) -> tk.Task:
        return await tasks.task(principal.tenant_id, task_id)

    @get("/tasks/{task_id:str}/stats", access=allow("operator"))
    async def stats(self, task_id: PathId, principal: PrincipalDep,
                    tasks: NamedDependency[Tasks], period: PeriodParam = None) -> tk.TaskStats:
        """Members who started, completions, claims and payments (in ``period`` if given),
        rewards paid, and the funnel of the task's chain (members who completed each step)."""
        return await tasks.stats(principal.tenant_id, task_id, period)

    @get("/members/{member_id:str}/tasks", access=allow("ingest", member=True))
    async def member_tasks(self, member_id: PathId, principal: PrincipalDep,
                           tasks: NamedDependency[Tasks]) -> tk.MemberTaskList:
        """The tasks open to the member now, each with its progress in the current period
        (a streak: its current run), status and reward; a locked step names the task that
        unlocks it."""
        return await tasks.member_tasks(principal.tenant_id, member_id, datetime.now(UTC))

    @post("/members/{member_id:str}/tasks/{task_id:str}/claims",
          access=allow("ingest", member=True), opt=WRITE, status_code=201,
          responses=replayable(201, tk.Claimed))
    async def claim(self, member_id: PathId, task_id: PathId, data: JSONBody[tk.ClaimIn],
                    principal: PrincipalDep, tasks: NamedDependency[Tasks]) -> Response[bytes]:
        """Claims and pays a completed manual task's reward (``period`` picks one, default the
        oldest unclaimed); idempotent by ``claim_id``; 409 nothing_to_claim."""
        return outcome_response(await tasks.claim(principal.tenant_id, member_id, task_id,
                                                  data, datetime.now(UTC)))
