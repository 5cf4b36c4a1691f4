from __future__ import annotations

import json
import re
from typing import Any

from proto.common import ID_PATTERN, NO_NUL, PATTERN_END
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


def _documents() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text)
            for name, text in openapi_documents(load_settings({})).items()}


def _operations() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    return [(path, method, operation, document)
            for document in _documents().values()
            for path, item in document["paths"].items()
            for method, operation in item.items()]


def test_every_operation_documents_its_errors_in_the_envelope_and_its_security() -> None:
    for path, method, operation, document in _operations():
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        assert "400" not in responses, where
        assert "503" in responses, where
        for status, response in responses.items():
            if status.startswith("2"):
                continue
            name = response["$ref"].rsplit("/", 1)[1]
            shared = document["components"]["responses"][name]
            schema = shared["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, where
        assert set(document["components"]["securitySchemes"]) == {"apiKey", "memberToken"}
        if operation["security"]:
            assert {"401", "403", "429"} <= set(responses), where
            assert {"apiKey": []} in operation["security"], where
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            assert "404" in responses, where
        if "requestBody" in operation or operation.get("parameters"):
            assert "422" in responses, where
        if method in ("post", "put", "delete"):
            assert "409" in responses, where


def test_request_schemas_refuse_unknown_fields_and_keep_item_constraints() -> None:
    documents = _documents()
    for document in documents.values():
        assert "oneOf" not in json.dumps(document)
        schemas = document["components"]["schemas"]
        for path, method, operation, doc in _operations():
            if doc is not document or "requestBody" not in operation:
                continue
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            name = body["$ref"].rsplit("/", 1)[1]
            assert schemas[name]["additionalProperties"] is False, f"{method} {path}"
    rewards = documents["rewards"]["components"]["schemas"]
    member_ids = rewards["IssueIn"]["properties"]["member_ids"]["anyOf"][0]  # or segment_id
    assert member_ids["items"]["pattern"] == ID_PATTERN
    assert rewards["CodesIn"]["properties"]["codes"]["items"]["minLength"] >= 1
    points = documents["points"]["components"]["schemas"]
    values = points["EventIn"]["properties"]["attributes"]["anyOf"][0]
    assert "anyOf" in values["additionalProperties"]


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [p for key, value in node.items()
                for p in ([value] if key == "pattern" and isinstance(value, str)
                          else _patterns(value))]
    return [p for item in node for p in _patterns(item)] if isinstance(node, list) else []


def test_patterns_end_values_alike_in_python_and_json_schema() -> None:
    """A pattern that refuses line breaks ends with PATTERN_END: with a bare `$`, the service
    (Python) would take a value with a final newline that the published schema refuses."""
    patterns = {p for document in _documents().values() for p in _patterns(document)}
    assert ID_PATTERN in patterns
    assert {p for p in patterns if not p.endswith(PATTERN_END)} == {NO_NUL}
    for pattern in patterns - {NO_NUL}:
        assert re.search(pattern, "a\n") is None, pattern
    # Python's \d also takes other scripts' digits; JSON Schema's does not.
    assert not [p for p in patterns if "\\d" in p]


def test_stored_outcome_bodies_are_documented_as_objects() -> None:
    rewards = _documents()["rewards"]["paths"]
    for path, name in (("/rewards/v1/tickets", "Tickets"),
                       ("/rewards/v1/pools/{pool_id}/opens", "PoolOpened"),
                       ("/rewards/v1/boxes/{box_id}/draws", "DrawResult")):
        content = rewards[path]["post"]["responses"]["201"]["content"]["application/json"]
        assert content["schema"] == {"$ref": f"#/components/schemas/{name}"}, path


def test_a_settle_body_is_optional_as_the_server_accepts_none() -> None:
    points = _documents()["points"]["paths"]
    for action in ("void", "capture"):
        body = points[f"/points/v1/holds/{{hold_id}}/{action}"]["post"]["requestBody"]
        assert body["required"] is False, action
