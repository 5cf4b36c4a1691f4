from __future__ import annotations

import httpx
import pytest

from tests.support.api import Rewards, Tenant


@pytest.fixture
def rewards(client: httpx.AsyncClient, tenant: Tenant) -> Rewards:
    return Rewards(client, tenant)
