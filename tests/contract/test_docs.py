"""The docs page works with no internet: every script, style and icon it references is served by
the app itself; /metrics says its content type once."""

from __future__ import annotations

import re

import httpx
import pytest

from services.composition.registry import SERVICE_NAMES

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.mark.parametrize("service", SERVICE_NAMES)
async def test_docs_page_and_every_asset_come_from_the_app(client: httpx.AsyncClient,
                                                           service: str) -> None:
    page = await client.get(f"/{service}/docs")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assets = ASSET.findall(page.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert any(a.endswith(".css") for a in assets), assets
    for asset in assets:
        assert asset.startswith(f"/{service}/docs/"), f"{asset} is not served by fuli"
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
    document = await client.get(f"/{service}/docs/openapi.json")
    assert document.status_code == 200
    assert document.json()["info"]["title"] == f"fuli {service}"


async def test_metrics_content_type_names_its_charset_once(client: httpx.AsyncClient) -> None:
    response = await client.get("/points/metrics")
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.count("charset") == 1, content_type
    assert content_type.startswith("text/plain; version="), content_type
