from __future__ import annotations

import httpx
import pytest

from tests.support.api import Points, Tenant


@pytest.fixture
def points(client: httpx.AsyncClient, tenant: Tenant) -> Points:
    return Points(client, tenant)
