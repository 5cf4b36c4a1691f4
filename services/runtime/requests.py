"""Strict request bodies, and headers read straight from the ASGI scope.

Litestar converts JSON bodies with msgspec in lax mode, which would accept ``"10"`` for an
integer. Points are value, so bodies declared as Structs (or ``Struct | None``) are decoded
strictly, straight from the bytes, by one cached msgspec Decoder per type; a type error is a 422
naming the field.

Times in a body must have an offset and fall within the years fuli takes (services.runtime.times),
as the contract's patterns say.

JSON itself has one kind of number: ``10.0`` is the integer 10 to JSON Schema (and to the OpenAPI
contract), so a whole number written with a fraction is taken where an integer is expected; any
other fraction stays a 422.
"""

from __future__ import annotations

import types
from datetime import datetime
from functools import lru_cache
from typing import Any, Union, get_args, get_origin

import msgspec
from litestar import Request
from litestar.types import Empty, Scope

from services.runtime.times import sent_time

# Beyond 2**53 a float no longer spells one integer exactly.
_EXACT_FLOAT_LIMIT = 2**53


def scope_header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case, as ASGI servers give names), read
    from the scope: Litestar's ``connection.headers`` would first build a map of them all, on
    every request."""
    for header, value in scope["headers"]:
        if header == name:
            return value.decode("latin-1")
    return None


@lru_cache(maxsize=512)
def decoder_for(body_type: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type)


def strict_body_type(annotation: Any) -> Any:
    """``annotation`` if it is a Struct or a union of Structs (tagged), maybe with None; else
    None."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if members and all(strict_body_type(member) is not None for member in members):
            return annotation
    return None


@lru_cache(maxsize=512)
def carries_times(body_type: Any) -> bool:
    """Whether a value of ``body_type`` may hold a datetime anywhere."""
    seen: set[type] = set()

    def has(info: msgspec.inspect.Type) -> bool:
        if isinstance(info, msgspec.inspect.DateTimeType):
            return True
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in seen:
                return False
            seen.add(info.cls)
            return any(has(field.type) for field in info.fields)
        if isinstance(info, msgspec.inspect.Metadata):
            return has(info.type)
        if isinstance(info, msgspec.inspect.UnionType):
            return any(has(member) for member in info.types)
        if isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType,
                             msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)):
            return has(info.item_type)
        if isinstance(info, msgspec.inspect.DictType):
            return has(info.value_type)
        return False

    return has(msgspec.inspect.type_info(body_type))


def check_sent_times(value: Any, path: str = "") -> None:
    if isinstance(value, datetime):
        sent_time(value, path)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            check_sent_times(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_sent_times(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_sent_times(item, f"{path}.{key}")


def decode_body(body_type: Any, body: bytes) -> Any:
    decoded = _decode(body_type, body)
    if carries_times(body_type):
        check_sent_times(decoded)
    return decoded


def _decode(body_type: Any, body: bytes) -> Any:
    try:
        return decoder_for(body_type).decode(body or b"null")
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise
        whole = _whole_floats_as_ints(msgspec.json.decode(body))
        try:
            return msgspec.convert(whole, body_type, strict=True)
        except msgspec.ValidationError:
            raise exc from None


def _whole_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_FLOAT_LIMIT:
        return int(value)
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    return value


class StrictRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        if self._json is Empty:
            field = self.route_handler.parsed_data_field
            body_type = strict_body_type(field.annotation) if field is not None else None
            if body_type is None:
                return await super().json()
            self._json = decode_body(body_type, await self.body())
        return self._json
