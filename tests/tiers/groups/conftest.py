from __future__ import annotations

import httpx
import pytest

from tests.support.api import Tenant
from tests.tiers.groups.support import GroupsApi


@pytest.fixture
def groups(client: httpx.AsyncClient, tenant: Tenant) -> GroupsApi:
    return GroupsApi(client, tenant)
