"""Where webhooks may go: `https` to public addresses only, checked when a hook is registered and again, against the
address the name resolves to, right before every connection. Pure, apart from the resolver.

- The URL must be plain printable ASCII (international host names in punycode), without user information, fragment,
  backslashes or whitespace. Host names need at least one dot and no trailing dot; they are resolved as absolute names
  (with the trailing dot added) so the resolver's search domains never complete them into internal names.
- A host that looks numeric must be a canonical dotted-quad IPv4 address: `2130706433`, `0177.0.0.1`, `0x7f.1` and
  `127.1`, which C resolvers read as 127.0.0.1, are refused as written.
- Every address the name resolves to must be public: no private, loopback, link-local (cloud metadata included),
  CGNAT, benchmarking, documentation, multicast, reserved or unspecified address; IPv6 must be global unicast
  (2000::/3) outside the special ranges, or NAT64 (64:ff9b::/96) of a public IPv4 address; IPv4-mapped and
  IPv4-compatible IPv6 addresses, Teredo, and 6to4 of a non-public IPv4 address are refused.
- A host written exactly as one of TOKEN_BROKER_WEBHOOK_ALLOW_HOSTS escapes these address rules and may use `http`:
  for development and tests. Only the host as written counts: a name that resolves to an allowed address is not
  allowed by that.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from token_broker.store.hook_models import MAX_TARGET_URL_LENGTH

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# A resolver takes an absolute host name (ending in ".") and a port, and gives the addresses it stands for.
Resolver = Callable[[str, int], Sequence[str]]

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
BLOCKED_V4 = tuple(
    _V4(network)
    for network in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT shared address space (Alibaba's metadata service is 100.100.100.200)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local: the cloud metadata service 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments (Oracle's metadata service is 192.0.0.192)
        "192.0.2.0/24",
        "192.31.196.0/24",
        "192.52.193.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "192.175.48.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
GLOBAL_UNICAST_V6 = _V6("2000::/3")
BLOCKED_V6 = tuple(
    _V6(network)
    for network in (
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
        "2001:db8::/32",
        "2002::/16",  # 6to4: allowed only when the IPv4 address inside is public (checked below)
        "3fff::/20",
    )
)
NAT64 = _V6("64:ff9b::/96")
IPV4_COMPATIBLE = _V6("::/96")
SIXTO4 = _V6("2002::/16")
# Names that only ever mean something inside a network.
INTERNAL_SUFFIXES = ("localhost", "localdomain", "local", "internal", "intranet", "lan", "home.arpa", "arpa", "corp")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")


class TargetRefused(ValueError):
    """A target URL or address that webhooks may not use; the message says why, in words a partner can act on."""


@dataclass(frozen=True)
class Target:
    """A target URL taken apart: `host` is lowercase ASCII (an IPv6 address without brackets)."""

    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, at least "/"
    address: IPAddress | None  # when the host is an address literal
    allowed_by_setting: bool

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if isinstance(self.address, ipaddress.IPv6Address) else self.host
        default = 443 if self.scheme == "https" else 80
        return shown if self.port == default else f"{shown}:{self.port}"


def _normalized_allow_list(allow_hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(host.strip().lower().removeprefix("[").removesuffix("]") for host in allow_hosts)


def blocked_reason(address: IPAddress) -> str | None:
    """Why an address is not a public one that webhooks may reach, or None when it is."""
    if isinstance(address, ipaddress.IPv4Address):
        if any(address in network for network in BLOCKED_V4) or not address.is_global:
            return f"{address} is not a public address"
        return None
    if address.ipv4_mapped is not None:
        return f"{address} is an IPv4-mapped IPv6 address"
    if address in IPV4_COMPATIBLE:  # ::, ::1 and the deprecated IPv4-compatible addresses
        return f"{address} is not a public address"
    if address in NAT64:
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        return None if blocked_reason(embedded) is None else f"{address} embeds a non-public IPv4 address"
    if address in SIXTO4:
        assert address.sixtofour is not None
        if blocked_reason(address.sixtofour) is not None:
            return f"{address} embeds a non-public IPv4 address"
    elif any(address in network for network in BLOCKED_V6):
        return f"{address} is not a public address"
    if address not in GLOBAL_UNICAST_V6 or address.scope_id is not None:
        return f"{address} is not a public address"
    return None


def _port(text: str) -> int | None:
    """The port after the host (":443"), None when there is none; TargetRefused when it is not 1 to 65535."""
    if not text:
        return None
    digits = text.removeprefix(":")
    if not text.startswith(":") or not digits.isascii() or not digits.isdigit() or len(digits) > 5:
        raise TargetRefused("target_url's port must be a number between 1 and 65535.")
    port = int(digits)
    if not 1 <= port <= 65535:
        raise TargetRefused("target_url's port must be a number between 1 and 65535.")
    return port


def _ascii_printable(value: str) -> bool:
    return all(0x21 <= ord(character) <= 0x7E for character in value)


def parse_target(url: object, allow_hosts: Iterable[str] = ()) -> Target:
    """The target URL taken apart, when its form may be used; TargetRefused otherwise. Does not resolve."""
    if not isinstance(url, str) or not url:
        raise TargetRefused("target_url is required: an https:// URL on a public host.")
    if len(url) > MAX_TARGET_URL_LENGTH:
        raise TargetRefused(f"target_url must be at most {MAX_TARGET_URL_LENGTH} characters long.")
    if not _ascii_printable(url):
        raise TargetRefused(
            "target_url must be printable ASCII without spaces: percent-encode the path and write an international "
            "host name in punycode (xn--...)."
        )
    if "\\" in url or "#" in url:
        raise TargetRefused("target_url must not contain backslashes or a fragment (#...).")
    scheme, separator, _ = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in ("https", "http"):
        raise TargetRefused("target_url must be an https:// URL.")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise TargetRefused("target_url is not a valid URL: check its host name and port number.") from None
    netloc = parts.netloc.lower()
    if "@" in netloc:
        raise TargetRefused("target_url must not carry a user name or password (the part up to '@').")
    address: IPAddress | None = None
    if netloc.startswith("["):
        literal, _, port_part = netloc[1:].partition("]")
        if "%" in literal:
            raise TargetRefused("target_url must not use an IPv6 zone (%...).")
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            raise TargetRefused("target_url has an invalid IPv6 address.") from None
        host = address.compressed
    else:
        host, colon, port_text = netloc.partition(":")
        port_part = colon + port_text
    port = _port(port_part)
    if not host:
        raise TargetRefused("target_url needs a host name, as in https://hooks.example.com/...")
    if address is None:
        labels = host.split(".")
        if _NUMERIC_LABEL.fullmatch(labels[-1]):
            if not _DOTTED_QUAD.fullmatch(host):
                raise TargetRefused(
                    "target_url's host looks like an IPv4 address but is not written as four decimal numbers "
                    "(a.b.c.d, without leading zeros)."
                )
            address = ipaddress.IPv4Address(host)
        elif len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise TargetRefused(
                "target_url's host is not a valid host name: letters, digits and '-' in dot-separated labels, "
                "no trailing dot, punycode (xn--...) for an international name."
            )
    allowed = host in _normalized_allow_list(allow_hosts)
    if scheme != "https" and not allowed:
        raise TargetRefused("target_url must be an https:// URL.")
    if not allowed:
        if address is not None:
            reason = blocked_reason(address)
            if reason is not None:
                raise TargetRefused(f"target_url must point to a public address: {reason}.")
        else:
            if "." not in host:
                raise TargetRefused("target_url's host must be a fully qualified name, such as hooks.example.com.")
            if any(host == suffix or host.endswith("." + suffix) for suffix in INTERNAL_SUFFIXES):
                raise TargetRefused("target_url's host is an internal name; use a public host name.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port if port is not None else (443 if scheme == "https" else 80),
        path=path,
        address=address,
        allowed_by_setting=allowed,
    )


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for an absolute host name (TCP)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


# Looked up at call time, so that tests can stand in for the world's DNS.
resolver: Resolver = system_resolver


def resolve(target: Target, using: Resolver | None = None) -> IPAddress:
    """The one address to connect to for this target: every address its name resolves to must be allowed.

    TargetRefused when the name does not resolve or any of its addresses is not public (a name that mixes public and
    private addresses is treated as hostile). Allowed hosts skip the address rules.
    """
    if target.address is not None:
        if not target.allowed_by_setting and (reason := blocked_reason(target.address)) is not None:
            raise TargetRefused(f"target_url must point to a public address: {reason}.")
        return target.address
    lookup = using or resolver
    try:
        found = lookup(target.host + ".", target.port)
    except (OSError, UnicodeError):
        found = []
    addresses: list[IPAddress] = []
    for text in found:
        try:
            addresses.append(ipaddress.ip_address(text))  # a zone (fe80::1%eth0) is kept, and refused below
        except ValueError:
            raise TargetRefused(
                f"target_url's host {target.host} resolves to something that is not an address."
            ) from None
    if not addresses:
        raise TargetRefused(f"target_url's host {target.host} does not resolve to any address.")
    if not target.allowed_by_setting:
        for address in addresses:
            reason = blocked_reason(address)
            if reason is not None:
                raise TargetRefused(f"target_url's host {target.host} resolves to a non-public address: {reason}.")
    return addresses[0]


def check_target(url: object, allow_hosts: Iterable[str] = (), using: Resolver | None = None) -> Target:
    """Registration's check: the URL's form, then the addresses its host resolves to."""
    target = parse_target(url, allow_hosts)
    resolve(target, using)
    return target
