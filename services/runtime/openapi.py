"""The OpenAPI document a service serves: Litestar's paths and parameters, with bodies, errors and
security derived here, in one place, from the handlers themselves.

Litestar's own schema generation documents a 400 body nobody gets, loses constraints on list items
and on optional fields, says ``oneOf`` where msgspec accepts any matching member, and cannot see
the body of a handler that answers with stored bytes. So every body schema is msgspec's own JSON
schema of the type the handler decodes or encodes (the exact rules the server applies), every
operation lists the error statuses its access, parameters and method can produce in the
``{"error": {code, message, details}}`` envelope, and its security says which bearer credential
it takes.
"""

from __future__ import annotations

import functools
import inspect
import operator
import types
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin

import msgspec
from litestar import Litestar, MediaType, Response
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from proto.common import ErrorEnvelope, Request
from services.runtime.auth import ACCESS_OPT, Access
from services.runtime.errors import INVALID_REFUSALS, NOT_FOUND_REFUSALS
from services.runtime.times import ANSWERED_DATE_TIME_PATTERN, DATE_PATTERN, DATE_TIME_PATTERN

API_KEY_SCHEME = "apiKey"
MEMBER_TOKEN_SCHEME = "memberToken"
SECURITY_SCHEMES = {
    API_KEY_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "An API key, `Authorization: Bearer fuli_...`. Roles nest: an admin key may "
                       "do what an operator key may, and an operator key what an ingest key may.",
    },
    MEMBER_TOKEN_SCHEME: {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A member token from `POST /points/v1/member-tokens`: acts only as its "
                       "own member.",
    },
}

# Each error status: why it happens and the codes it carries (``error.code``). Business refusals
# add their own codes to 404, 409 and 422 (``insufficient_points``, ``out_of_stock``, ...).
ERROR_STATUSES: dict[int, tuple[str, str, tuple[str, ...]]] = {
    401: ("Unauthorized", "Missing, unknown, revoked or expired credentials.",
          ("unauthorized", "token_expired")),
    403: ("Forbidden", "The credential's role may not call this operation, or a member token "
          "named another member.", ("forbidden",)),
    404: ("NotFound", "Something named in the path or body does not exist.",
          ("not_found", *sorted(NOT_FOUND_REFUSALS))),
    409: ("Conflict", "A business rule refused the request (nothing changed), or its id was "
          "already used with a different request.",
          ("conflict", "idempotency_conflict", "insufficient_points")),
    413: ("PayloadTooLarge", "The body is larger than the server accepts.",
          ("payload_too_large",)),
    422: ("ValidationFailed", "A body, path or query value is malformed or out of range, or "
          "breaks a rule between fields; `details.field` names it.",
          ("validation_failed", *sorted(INVALID_REFUSALS))),
    429: ("RateLimited", "Too many requests for this credential; `Retry-After` says when to "
          "come back.", ("rate_limited",)),
    503: ("Unavailable", "A backing service is unavailable for a moment; retry the same "
          "request (with the same id) after `Retry-After` seconds.",
          ("service_unavailable",)),
}
# msgspec decodes RFC 3339 times; JSON Schema's "format" is only an annotation, so a pattern
# says it. A request's times keep to the years fuli takes; an answer's may be in any zone.
TimeFormats = dict[type, tuple[str, str]]
SENT_TIME_FORMATS: TimeFormats = {
    msgspec.inspect.DateTimeType: ("date-time", DATE_TIME_PATTERN),
    msgspec.inspect.DateType: ("date", DATE_PATTERN)}
ANSWERED_TIME_FORMATS: TimeFormats = {
    msgspec.inspect.DateTimeType: ("date-time", ANSWERED_DATE_TIME_PATTERN),
    msgspec.inspect.DateType: ("date", DATE_PATTERN)}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REFUSES_OPT = "refuses"
TEXT_BODY_OPT = "text_body"


def refuses(*statuses: int) -> dict[str, tuple[int, ...]]:
    """A handler's ``opt`` naming error statuses its access, parameters and method do not imply
    (a read that answers 409 before a model is set, a singleton's 404)."""
    return {REFUSES_OPT: statuses}


def text_body(media_type: str, description: str) -> dict[str, tuple[str, str]]:
    """A handler's ``opt`` documenting the text body it reads itself (a CSV upload), which
    Litestar cannot see."""
    return {TEXT_BODY_OPT: (media_type, description)}


_REF_TEMPLATE = "#/components/schemas/{name}"


def install_contract(app: Litestar) -> dict[str, Any]:
    """Builds the app's contract document and makes it the one the app serves at
    ``<docs>/openapi.json`` (and that ``fuli openapi`` writes)."""
    document = contract_document(app)
    # The plugin caches the document it serves; seeding the cache makes it serve this one.
    app.plugins.get(OpenAPIPlugin)._openapi_schema = document
    return document


def served_document(app: Litestar) -> dict[str, Any]:
    return app.plugins.get(OpenAPIPlugin).provide_openapi_schema()


def contract_document(app: Litestar) -> dict[str, Any]:
    document = app.openapi_schema.to_schema()
    operations = list(_operations(app, document))
    body_types: list[Any] = [ErrorEnvelope]
    for _, handler, _ in operations:
        body_types.extend(t for t in (_request_type(handler), _success_type(handler))
                          if t is not None)
    schemas, components = msgspec.json.schema_components(body_types, schema_hook=_any_value,
                                                         ref_template=_REF_TEMPLATE)
    by_type = dict(zip(body_types, schemas, strict=True))
    _finish_components(body_types, components)
    for method, handler, operation in operations:
        _document_parameters(operation)
        _document_bodies(handler, operation, by_type)
        _document_errors(method, handler, operation)
        _document_security(handler, operation)
    document["components"] = {
        "schemas": dict(sorted(components.items())),
        "responses": {name: _error_response(status, description, codes)
                      for status, (name, description, codes) in ERROR_STATUSES.items()},
        "securitySchemes": SECURITY_SCHEMES,
    }
    _clean_descriptions(document)
    return document


def _clean_descriptions(node: Any) -> None:
    """Docstrings become descriptions: indent them the same whatever Python compiled them (3.13
    strips their indentation, earlier versions keep it), so the document is the same bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = inspect.cleandoc(value)
            else:
                _clean_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            _clean_descriptions(item)


def _finish_components(body_types: list[Any], components: dict[str, Any]) -> None:
    """msgspec writes a time as a plain string: give every one its format and pattern. And
    msgspec's schemas say what it decodes, where a field with a default may be left out; an
    answer always has every field."""
    seen: set[type] = set()

    def struct(info: msgspec.inspect.StructType) -> None:
        if info.cls in seen:
            return
        seen.add(info.cls)
        sent = issubclass(info.cls, Request)
        formats = SENT_TIME_FORMATS if sent else ANSWERED_TIME_FORMATS
        component = components[info.cls.__name__]
        properties = component["properties"]
        if not sent and not info.cls.__struct_config__.omit_defaults:
            # fuli writes every field of an answer, defaults included: a client may rely on all.
            component["required"] = list(properties)
        for field in info.fields:
            mark(field.type, properties[field.encode_name], formats)

    def mark(info: msgspec.inspect.Type, schema: dict[str, Any],
             formats: TimeFormats) -> None:
        if isinstance(info, msgspec.inspect.Metadata):
            mark(info.type, schema, formats)
        elif isinstance(info, msgspec.inspect.StructType):
            struct(info)
        elif type(info) in formats:
            schema["format"], schema["pattern"] = formats[type(info)]
        elif isinstance(info, msgspec.inspect.UnionType):
            times = [t for t in info.types if type(t) in formats]
            for member in info.types:
                if isinstance(member, (msgspec.inspect.StructType, msgspec.inspect.Metadata,
                                       msgspec.inspect.ListType)):
                    mark(member, {}, formats)
            if len(times) == 1:
                for option in schema.get("anyOf", []):
                    if option == {"type": "string"}:
                        mark(times[0], option, formats)
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType,
                               msgspec.inspect.FrozenSetType, msgspec.inspect.VarTupleType)):
            mark(info.item_type, schema.get("items", {}), formats)
        elif isinstance(info, msgspec.inspect.DictType):
            mark(info.value_type, schema.get("additionalProperties", {}), formats)

    for info in msgspec.inspect.multi_type_info(body_types):
        mark(info, {}, ANSWERED_TIME_FORMATS)


def _any_value(annotation: Any) -> dict[str, Any]:
    if annotation is object:  # ``dict[str, object]``: any JSON value
        return {"description": "any JSON value"}
    raise TypeError(f"no JSON schema for {annotation!r}")


def _operations(app: Litestar, document: dict[str, Any]
                ) -> Iterator[tuple[str, HTTPRouteHandler, dict[str, Any]]]:
    paths = document.get("paths", {})
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                operation = paths[route.path_format].get(method.lower())
                if operation is not None:
                    yield method, handler, operation


def _strip_none(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (it, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) < len(get_args(annotation)):
            return functools.reduce(operator.or_, members), True
    return annotation, False


def _request_type(handler: HTTPRouteHandler) -> Any:
    field = handler.parsed_data_field
    return None if field is None else _strip_none(field.annotation)[0]


def _success_type(handler: HTTPRouteHandler) -> Any:
    """The type of the body of the handler's success status: its return type, or for one that
    answers with bytes (a stored outcome) the type its ``responses`` declares."""
    declared = (handler.responses or {}).get(handler.status_code)
    if declared is not None:
        return declared.data_container
    annotation = handler.parsed_fn_signature.return_type.annotation
    if annotation is None or annotation is type(None):
        return None
    origin = get_origin(annotation) or annotation
    if isinstance(origin, type) and issubclass(origin, Response):
        raise RuntimeError(f"{handler.handler_name} answers with a Response: declare its "
                           f"{handler.status_code} body with responses=replayable(...)")
    return annotation


def _document_parameters(operation: dict[str, Any]) -> None:
    # A query or path value is never JSON null: an optional parameter is one that may be left
    # out, so its schema is the non-null member of Litestar's ``X | None``.
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        if schema.get("pattern") == DATE_TIME_PATTERN:
            schema["format"] = "date-time"
        members = schema.pop("oneOf", None)
        if members is None:
            continue
        members = [m for m in members if m != {"type": "null"}]
        if len(members) == 1:
            schema.update(members[0])
        else:
            schema["anyOf"] = members


def _document_bodies(handler: HTTPRouteHandler, operation: dict[str, Any],
                     by_type: dict[Any, Any]) -> None:
    request_type = _request_type(handler)
    text = handler.opt.get(TEXT_BODY_OPT)
    if text is not None:
        media_type, description = text
        operation["requestBody"] = {"required": True, "description": description,
                                    "content": {media_type: {"schema": {"type": "string"}}}}
    if request_type is not None:
        field = handler.parsed_data_field
        assert field is not None
        optional = _strip_none(field.annotation)[1] or field.has_default
        schema = by_type[request_type]
        if optional:  # no body, or JSON null, is taken as the defaults
            schema = {"anyOf": [schema, {"type": "null"}]}
        operation["requestBody"] = {
            "required": not optional,
            "content": {"application/json": {"schema": schema}},
        }
        if optional:
            operation["requestBody"]["description"] = "Optional: no body (or null) is accepted."
    success_type = _success_type(handler)
    status = str(handler.status_code)
    previous = operation.get("responses", {}).get(status, {})
    response: dict[str, Any] = {"description": previous.get("description") or "Success"}
    if success_type is not None:
        # A body of another media type (a CSV export) is documented under its own.
        declared = (handler.responses or {}).get(handler.status_code)
        media = declared.media_type if declared is not None else MediaType.JSON
        media_type = media.value if isinstance(media, MediaType) else media
        response["content"] = {media_type: {"schema": by_type[success_type]}}
    operation["responses"] = {status: response}


def _document_errors(method: str, handler: HTTPRouteHandler, operation: dict[str, Any]) -> None:
    parameters = operation.get("parameters", [])
    statuses = {503}
    if ACCESS_OPT in handler.opt:
        statuses |= {401, 403, 429}
    if any(p.get("in") == "path" for p in parameters) or "requestBody" in operation:
        statuses.add(404)  # what the path or the body names (a member, a hold, a box) is unknown
    if parameters or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses.add(413)
    if method in WRITE_METHODS:
        statuses.add(409)
    statuses |= set(handler.opt.get(REFUSES_OPT, ()))
    for status in sorted(statuses):
        name = ERROR_STATUSES[status][0]
        operation["responses"][str(status)] = {"$ref": f"#/components/responses/{name}"}


def _document_security(handler: HTTPRouteHandler, operation: dict[str, Any]) -> None:
    access: Access | None = handler.opt.get(ACCESS_OPT)
    if access is None:
        operation["security"] = []
        return
    roles, member = access.roles, access.member
    security: list[dict[str, list[str]]] = [{API_KEY_SCHEME: []}]
    who = (f"an API key with role {' or '.join(sorted(roles))} (roles nest: admin, then "
           "operator, then ingest)")
    if member:
        security.append({MEMBER_TOKEN_SCHEME: []})
        who += ", or a member token for its own member"
    operation["security"] = security
    operation["x-fuli-roles"] = sorted(roles) + (["member"] if member else [])
    description = operation.get("description", "").rstrip()
    operation["description"] = f"{description}\n\nWho: {who}.".lstrip()


def _error_response(status: int, description: str, codes: tuple[str, ...]) -> dict[str, Any]:
    listed = ", ".join(f"`{code}`" for code in codes)
    response: dict[str, Any] = {
        "description": f"{description} Codes: {listed}.",
        "content": {"application/json": {
            "schema": {"$ref": _REF_TEMPLATE.format(name="ErrorEnvelope")},
            "example": {"error": {"code": codes[0], "message": description, "details": {}}},
        }},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 1}}}
    return response
