"""/console/ serves the built console's files, or says how to build them."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from services.runtime.stack import root_app


def test_a_built_console_is_served(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=app></div>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    with TestClient(root_app(["points"], tmp_path)) as client:
        for path in ("/console", "/console/"):
            page = client.get(path)
            assert page.status_code == 200
            assert page.text == "<!doctype html><div id=app></div>"
            assert page.headers["cache-control"] == "no-cache"
        asset = client.get("/console/assets/index-abc123.js")
        assert asset.status_code == 200
        assert asset.text == "console.log(1)"
        assert asset.headers["cache-control"] == "max-age=31536000, public, immutable"
        missing = client.get("/console/assets/other.js")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        outside = client.get("/console/../pyproject.toml")
        assert outside.status_code == 404


def test_an_unbuilt_console_answers_how_to_build_it(tmp_path: Path) -> None:
    with TestClient(root_app(["points"], tmp_path / "dist")) as client:
        for path in ("/console", "/console/", "/console/assets/index.js"):
            answer = client.get(path)
            assert answer.status_code == 404
            error = answer.json()["error"]
            assert error["code"] == "console_not_built"
            assert "make run" in error["message"]
            assert error["details"] == {"directory": str(tmp_path / "dist")}
        assert client.get("/").json()["console"] == "/console/"
