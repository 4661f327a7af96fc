"""Outbound safety: webhook destinations are checked against a deny list of networks.

By default the list blocks link-local addresses (169.254.0.0/16 and fe80::/10, where cloud metadata
services live), the cloud metadata addresses that sit elsewhere (fd00:ec2::254, 100.100.100.200), and the
unspecified addresses. It is configurable (JOURNEY_WEBHOOK_DENY), e.g. to add private ranges.

The check runs on what the connection actually uses: `DenyListResolver` filters every name the client
resolves (also after a redirect, and so also against DNS rebinding between a check and the connect), and
`check_url` refuses IP-literal hosts, which the client does not resolve.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

DEFAULT_DENY = (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/32", "::/128",
)  # fmt: skip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationDenied(Exception):
    """The destination resolves to a denied network."""


def parse_networks(specs: Sequence[str]) -> tuple[Network, ...]:
    """Networks from CIDR texts; ValueError naming the bad one."""
    networks = []
    for spec in specs:
        try:
            networks.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ValueError(f"'{spec}' is not a network such as 169.254.0.0/16") from None
    return tuple(networks)


def denied(address: str, networks: Sequence[Network]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def check_url(url: str, networks: Sequence[Network]) -> None:
    """Refuse a URL whose host is a denied IP literal (names are checked when resolved)."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    if denied(host, networks):
        raise DestinationDenied(f"{host} is in a denied network")


class DenyListResolver(AbstractResolver):
    """Resolves like the default resolver, then drops denied addresses (refusing when none is left)."""

    def __init__(self, networks: Sequence[Network]) -> None:
        self._networks = tuple(networks)
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not denied(r["host"], self._networks)]
        if not allowed:
            raise DestinationDenied(f"{host} resolves only to denied networks")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
