"""Schemathesis hooks for the contract test (loaded through SCHEMATHESIS_HOOKS).

A request the schema calls valid may still break a rule no JSON Schema can state (two fields that
go together, an action the tenant has not configured, a cursor from another list): those are 422s
with their own message. But the decoder (msgspec, Litestar's parameter parsing) must agree with
the schema exactly: a schema-valid request refused for its types, formats, lengths or fields means
the contract is wrong.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import schemathesis

DECODER_MESSAGE = re.compile(
    r"^(Expected |Object |Invalid |JSON is malformed|malformed JSON)|- at `\$")
# The id of the key the run authenticates with. Schemathesis reuses ids it read in responses
# (GET /keys lists this one), so it would sooner or later revoke its own key, and every request
# after that is a 401 that says nothing about the contract.
RUN_KEY_ID = os.environ.get("FULI_CONTRACT_KEY_ID")


@schemathesis.hook
def filter_path_parameters(ctx: Any, path_parameters: dict[str, Any] | None) -> bool:
    return not (RUN_KEY_ID and path_parameters and path_parameters.get("key_id") == RUN_KEY_ID)


@schemathesis.check
def schema_agrees_with_decoder(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        raise AssertionError(
            f"422 without the error envelope: {response.content[:200]!r}") from None
    message = str(error.get("message", ""))
    if error.get("code") == "validation_failed" and DECODER_MESSAGE.search(message):
        raise AssertionError(f"a schema-valid request was refused by the decoder: {message}")
    return None
