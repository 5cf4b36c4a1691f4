"""Strict request bodies.

Litestar converts JSON bodies with msgspec in lax mode, which would accept ``"10"`` for an
integer. Points are value, so bodies declared as Structs are decoded strictly, straight from the
bytes, by one cached msgspec Decoder per type; a type error is a 422 naming the field.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec
from litestar import Request
from litestar.types import Empty


@lru_cache(maxsize=512)
def decoder_for(struct_type: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(struct_type)


class StrictRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        if self._json is Empty:
            field = self.route_handler.parsed_data_field
            target = field.annotation if field is not None else None
            if isinstance(target, type) and issubclass(target, msgspec.Struct):
                body = await self.body()
                self._json = decoder_for(target).decode(body or b"null")
            else:
                return await super().json()
        return self._json
