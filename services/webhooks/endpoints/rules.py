"""Pure rules of endpoints: which event types exist, what an endpoint URL may be, and which
addresses a webhook may be sent to. No I/O."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import SplitResult, urlsplit

from proto.webhooks import ALL_EVENTS, PUBLIC_EVENT_TYPES
from services.runtime.errors import ValidationFailed

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"),
                                ipaddress.ip_address("fd00:ec2::254")})


def event_types(requested: Sequence[str]) -> list[str]:
    """The requested types, deduplicated in order; an unknown one is a 422 naming it. ``*``
    alone stands for every public type, present and future."""
    unknown = sorted({t for t in requested if t != ALL_EVENTS and t not in PUBLIC_EVENT_TYPES})
    if unknown:
        raise ValidationFailed(f"unknown event types: {', '.join(unknown)}",
                               field="event_types", unknown=unknown,
                               known=[ALL_EVENTS, *PUBLIC_EVENT_TYPES])
    types = list(dict.fromkeys(requested))
    return [ALL_EVENTS] if ALL_EVENTS in types else types


def subscribes(types: Sequence[str], event_type: str) -> bool:
    return event_type in types or (ALL_EVENTS in types and event_type in PUBLIC_EVENT_TYPES)


class Target(NamedTuple):
    """A checked URL's scheme, host (without brackets) and port."""

    scheme: str
    host: str
    port: int


def http_allowed(allow_http: bool, *, deployment_http: bool, deployment_private: bool) -> bool:
    """Whether an endpoint asking for ``allow_http`` may have it: only where the deployment
    allows http (FULI_WEBHOOKS_ALLOW_HTTP) or private targets (FULI_WEBHOOKS_ALLOW_PRIVATE,
    which local receivers need, and they speak http)."""
    if allow_http and not (deployment_http or deployment_private):
        raise ValidationFailed("this deployment does not allow http endpoints",
                               field="allow_http")
    return allow_http


def target(url: str, *, allow_http: bool) -> Target:
    """The scheme, host and port of an endpoint URL, or a 422 saying what is wrong with it:
    not absolute http(s), http where it is not allowed, credentials in it, a fragment."""
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"invalid URL: {exc}", field="url") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationFailed("the URL must be an absolute https URL", field="url")
    if parts.scheme == "http" and not allow_http:
        raise ValidationFailed("the URL must use https (http only for endpoints allowed it)",
                               field="url")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed("the URL may not carry credentials", field="url")
    if parts.fragment:
        raise ValidationFailed("the URL may not have a fragment", field="url")
    host = parts.hostname
    if not _valid_host(host):
        raise ValidationFailed("invalid host in the URL", field="url")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80))


def _valid_host(host: str) -> bool:
    if literal_address(host) is not None:
        return True
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63 and all(c.isalnum() or c == "-" for c in label)
        and label.isascii() and not label.startswith("-") and not label.endswith("-")
        for label in labels)


def literal_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def refused_address(address: IpAddress) -> str | None:
    """Why a webhook may not be sent to ``address`` (None: it may): anything but a global
    unicast address, i.e. loopback, private, shared (CGNAT), link-local (cloud metadata
    included), unique-local and site-local IPv6, multicast, reserved, unspecified; IPv4
    addresses mapped into or embedded in IPv6 are judged as the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in ipaddress.ip_network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refused_address(embedded)
    if address in METADATA_ADDRESSES:
        return "metadata"
    for kind, flag in (("loopback", address.is_loopback), ("link_local", address.is_link_local),
                       ("multicast", address.is_multicast),
                       ("unspecified", address.is_unspecified),
                       ("private", address.is_private), ("reserved", address.is_reserved)):
        if flag:
            return kind
    if not address.is_global:
        return "not_global"
    return None


def checked_addresses(host: str, addresses: Sequence[str]) -> list[IpAddress]:
    """The resolved addresses of ``host`` if every one may be sent to; otherwise a 422 naming
    the first refused (a name resolving to one private address among public ones is refused:
    which one a connection would use is not ours to choose)."""
    parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    if not parsed:
        raise ValidationFailed(f"{host} does not resolve", field="url", code="unresolvable_host")
    for address in parsed:
        reason = refused_address(address)
        if reason is not None:
            raise ValidationFailed(f"{host} resolves to a {reason.replace('_', ' ')} address",
                                   field="url", code="target_refused", reason=reason,
                                   address=str(address))
    return parsed
