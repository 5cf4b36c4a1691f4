from __future__ import annotations

import json

from services.composition.cli import OPENAPI_DIR
from services.composition.registry import openapi_documents
from services.runtime.settings import load_settings


def test_committed_openapi_documents_are_current() -> None:
    documents = openapi_documents(load_settings({}))
    for name, text in documents.items():
        path = OPENAPI_DIR / f"{name}.json"
        assert path.exists(), f"{path} missing: run `fuli openapi`"
        assert path.read_text() == text, f"{path} is stale: run `fuli openapi`"
        document = json.loads(text)
        assert document["openapi"].startswith("3.")
        assert all(p.startswith(f"/{name}/") for p in document["paths"])
