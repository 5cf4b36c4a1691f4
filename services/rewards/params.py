"""Query parameters the rewards API's paged lists share."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

PageLimit = Annotated[int, Parameter(ge=1, le=200)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
