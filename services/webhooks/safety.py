"""Where a webhook may go: an endpoint's URL checked at create and update, and its host
resolved and every address checked again at send time (a name may resolve elsewhere by then),
the connection then made to a checked address. FULI_WEBHOOKS_ALLOW_PRIVATE=true lifts the
address checks (tests and local development)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from services.runtime.errors import ValidationFailed
from services.webhooks.endpoints import rules
from services.webhooks.endpoints.rules import IpAddress, Target

# host, port -> the addresses the name resolves to. Tests pass their own to resolve names
# to chosen addresses without a DNS server.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Guard:
    """Checks endpoint targets under the deployment's settings."""

    def __init__(self, *, allow_private: bool, allow_http: bool,
                 resolver: Resolver = system_resolver) -> None:
        self.allow_private = allow_private
        self.allow_http = allow_http
        self.resolver = resolver

    def http_allowed(self, requested: bool) -> bool:
        """``requested``, or a 422 where the deployment does not allow http."""
        return rules.http_allowed(requested, deployment_http=self.allow_http,
                                  deployment_private=self.allow_private)

    def honours_http(self, flag: bool) -> bool:
        """Whether an endpoint's ``allow_http`` holds at send time: not once the deployment
        stopped allowing http (its http URL is then refused, and the delivery retried)."""
        return flag and (self.allow_http or self.allow_private)

    async def addresses(self, url: str, *, allow_http: bool) -> tuple[Target, list[IpAddress]]:
        """The URL's target and the addresses to connect to, every one checked; a 422 when
        the URL or any address is refused."""
        target = rules.target(url, allow_http=allow_http)
        literal = rules.literal_address(target.host)
        found = [str(literal)] if literal is not None else await self.resolver(target.host,
                                                                               target.port)
        if self.allow_private:
            if not found:
                raise ValidationFailed(f"{target.host} does not resolve", field="url",
                                       code="unresolvable_host")
            return target, [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        return target, rules.checked_addresses(target.host, found)
