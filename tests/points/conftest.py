from __future__ import annotations

import httpx
import pytest

from tests.conftest import Tenant
from tests.points.helpers import Points


@pytest.fixture
def points(client: httpx.AsyncClient, tenant: Tenant) -> Points:
    return Points(client, tenant)
