from __future__ import annotations

import httpx
import pytest

from tests.rewards.tasks.support import TasksApi
from tests.support.api import Tenant


@pytest.fixture
async def tasks_api(client: httpx.AsyncClient, tenant: Tenant) -> TasksApi:
    api = TasksApi(client, tenant)
    await api.setup()
    return api
