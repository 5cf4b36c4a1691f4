"""What a service declares to the platform, and the host that runs services in one process.

A service is a Litestar app plus the long-lived objects its handlers and actors use (a points
client, a group committer, feature services). Those objects are built once, when the host
opens, from the process's Resources, and closed when it closes; handlers receive them by
injection (``provides``) and actors from the worker's host. Nothing is built lazily in a
handler.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from litestar.types import ASGIApp, ControllerRouterHandler

from services.runtime.resources import Resources
from services.runtime.settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar

    from services.runtime.db import Conn

C = TypeVar("C")
T = TypeVar("T")

# The in-process apps of the services a host runs, by name: how a service calls another one's
# public HTTP API without a network hop when both run in one process.
Peers = Mapping[str, ASGIApp]
Components = Callable[[Resources, Peers], AbstractAsyncContextManager[C]]
# Sets a service's own gauges from PostgreSQL when its /metrics is scraped.
MetricsRefresh = Callable[["Conn"], Awaitable[None]]


@dataclass(frozen=True)
class ServiceSpec(Generic[C]):
    """A service: its name (the path prefix and the schema), its package (for its ``sql/``
    migrations), its routes, and how to build and expose its components."""

    name: str
    package: str
    description: str
    route_handlers: Sequence[ControllerRouterHandler]
    components: Components[C] | None = None
    # Handler parameter name -> the object it receives, taken from the components.
    provides: Mapping[str, Callable[[C], object]] = field(default_factory=dict)
    metrics: MetricsRefresh | None = None


class Host:
    """The apps of some services over one set of Resources, with their components built once.

    Components open in the order of the specs (a service may call the ones before it through
    ``peers``) and close in reverse."""

    def __init__(self, settings: Settings, specs: Sequence[ServiceSpec[Any]]) -> None:
        from services.runtime.app import create_service_app

        self.settings = settings
        self.specs = list(specs)
        self.apps: dict[str, Litestar] = {spec.name: create_service_app(spec, settings)
                                          for spec in self.specs}
        self._resources: Resources | None = None
        self._components: dict[str, object] = {}
        self._exits: contextlib.AsyncExitStack | None = None

    @property
    def resources(self) -> Resources:
        if self._resources is None:
            raise RuntimeError("the host is not open")
        return self._resources

    async def open(self, resources: Resources | None = None) -> None:
        """Open Resources (or use ``resources``, which stay the caller's to close) and build
        every service's components."""
        exits = contextlib.AsyncExitStack()
        try:
            if resources is None:
                resources = await Resources.open(self.settings)
                exits.push_async_callback(resources.close)
            for spec in self.specs:
                app = self.apps[spec.name]
                app.state.resources = resources
                if spec.components is not None:
                    built = await exits.enter_async_context(spec.components(resources,
                                                                            self.apps))
                    app.state.components = built
                    self._components[spec.name] = built
        except BaseException:
            await exits.aclose()
            raise
        self._resources = resources
        self._exits = exits

    def components(self, name: str, kind: type[T]) -> T:
        """The components of service ``name``, which must be a ``kind``."""
        built = self._components.get(name)
        if not isinstance(built, kind):
            raise RuntimeError(f"service {name!r} has no components of type {kind.__name__}")
        return built

    async def close(self) -> None:
        exits, self._exits = self._exits, None
        self._resources = None
        self._components = {}
        if exits is not None:
            await exits.aclose()
