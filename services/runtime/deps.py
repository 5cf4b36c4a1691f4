"""Handler parameter types for what the app factory provides."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import Parameter

from proto.common import ID_PATTERN
from services.runtime.auth import Principal
from services.runtime.resources import Resources

PrincipalDep = NamedDependency[Principal]
ResourcesDep = NamedDependency[Resources]


def get_resources(request: Request[Any, Any, Any]) -> Resources:
    return request.app.state.resources  # type: ignore[no-any-return]


def get_principal(request: Request[Any, Any, Any]) -> Principal:
    return request.user  # type: ignore[no-any-return]

# Path parameters carrying ids: Litestar enforces these constraints (msgspec Meta on a path
# parameter is not enough), so a bad id is a 422 before the handler runs.
PathId = Annotated[str, Parameter(min_length=1, max_length=128, pattern=ID_PATTERN)]
