"""Where a task that calls user-given URLs may connect: URL parsing and destination checks (SSRF).

A URL from a schedule's payload must not let its author reach what only the scheduler can reach:
loopback, the pod and cluster networks, link-local (cloud metadata lives there), and so on. The
rules, applied to every hop of a request (redirects included):

1. The URL is parsed by :func:`parse_url`. A host that names an address is turned into that
   address here, in every form a resolver would accept: ``[::ffff:127.0.0.1]``, ``2130706433``,
   ``0177.0.0.1``, ``0x7f.1``, ``127.1`` are all 127.0.0.1. Anything else must be a DNS name.
2. Cloud metadata host names (``metadata.google.internal``, ...) are refused by name, before any
   DNS query.
3. The name is resolved once and **every** address it resolves to is checked
   (:func:`address_problem`): a name with one public and one private address is refused, so a
   resolver that alternates answers cannot slip a private one through.
4. The caller then connects to one of the checked addresses (pinning), never to the name, so a
   second lookup cannot give another answer (DNS rebinding).

The allow-list (configuration) lifts the refusal for chosen destinations: exact host names
(the URL's host, compared case-insensitively, without a trailing dot) and addresses or CIDR
blocks (each resolved address must be inside one). Cloud metadata addresses stay refused unless
the allow-list names that very address (a single-address entry) or the URL's host is a metadata
host name that is itself on the list: a broad block such as ``169.254.0.0/16`` or an allowed name
that resolves there does not open them.

Pure apart from :func:`system_resolver` (``loop.getaddrinfo``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import AfterValidator, Field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

SCHEMES: dict[str, int] = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048

#: Cloud metadata services by name (GCP's; ``metadata`` is what GCE's search domain completes).
METADATA_HOSTS: frozenset[str] = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
#: Cloud metadata services by address: AWS/GCP/Azure/OCI/DigitalOcean IMDS, AWS IMDS over IPv6,
#: AWS ECS task metadata, Alibaba Cloud.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset({
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
})

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# The forms inet_aton (and so getaddrinfo, curl, browsers) reads as an IPv4 address: one to four
# parts, each decimal, octal (leading 0) or hexadecimal (0x).
_NUMBER = r"(?:0x[0-9a-f]*|[0-9]+)"
_NUMERIC_HOST = re.compile(rf"{_NUMBER}(?:\.{_NUMBER}){{0,3}}")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NOT_IN_URL = re.compile(r"[\x00-\x20\x7f\\]")


class DestinationRefused(Exception):
    """The destination is not allowed. ``host`` is the URL's host, ``reason`` says why (no secrets)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class ResolutionFailed(Exception):
    """The host name did not resolve (or resolved to nothing)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    """One parsed http(s) URL.

    ``host`` is canonical: an address's text (IPv6 without brackets) when ``address`` is set,
    else the ASCII (IDNA) host name in lower case without a trailing dot. ``target`` is the
    path and query as written (never empty; the fragment is dropped).
    """

    scheme: str
    host: str
    address: IPAddress | None
    port: int
    target: str

    @property
    def default_port(self) -> bool:
        return SCHEMES[self.scheme] == self.port

    @property
    def authority(self) -> str:
        """``host[:port]`` as the ``Host`` header carries it (IPv6 in brackets, default port left out)."""
        host = f"[{self.host.replace('%', '%25')}]" if ":" in self.host else self.host
        return host if self.default_port else f"{host}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def url(self) -> str:
        """The canonical URL (what a relative redirect is resolved against)."""
        return f"{self.scheme}://{self.authority}{self.target}"

    def url_for(self, address: IPAddress) -> httpx.URL:
        """The URL with the host replaced by ``address``, same port, path and query (the pinned URL)."""
        text = address.compressed.replace("%", "%25")  # an IPv6 zone id, percent-encoded in a URL
        host = f"[{text}]" if address.version == 6 else text
        return httpx.URL(f"{self.scheme}://{host}:{self.port}{self.target}")


def parse_url(url: str) -> Target:
    """Parse an absolute http(s) URL, or raise :class:`ValueError` (whose message never repeats
    the URL: its query may carry a token)."""
    if not isinstance(url, str):
        raise ValueError("the URL must be text")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _NOT_IN_URL.search(url):
        raise ValueError("the URL contains whitespace, a control character or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"the URL is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError("the URL's scheme must be http or https")
    if "@" in parts.netloc:
        raise ValueError("credentials in the URL are not supported; send an Authorization header")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if port == 0:
        raise ValueError("the URL's port must be between 1 and 65535")
    host, address = _parse_host(parts.hostname)
    path = parts.path or "/"
    if not path.startswith("/"):
        raise ValueError("the URL's path must start with '/'")
    target = urlunsplit(("", "", path, parts.query, ""))
    return Target(scheme, host, address, port or SCHEMES[scheme], target)


def display_url(url: str) -> str:
    """``url`` without its query string (it may carry a token), for logs and API views."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "…" if parts.query else "", ""))


def checked_url(value: str) -> str:
    """``value``, if :func:`parse_url` accepts it (a pydantic ``AfterValidator``)."""
    parse_url(value)
    return value


#: An absolute http(s) URL that :func:`parse_url` accepts, as a pydantic field type: every URL a
#: request or a setting gives (http.request, status webhooks, reports) is checked by this one rule.
HttpUrl = Annotated[str, Field(max_length=MAX_URL_LENGTH), AfterValidator(checked_url)]


def _parse_host(hostname: str) -> tuple[str, IPAddress | None]:
    """The canonical host and, when it names one, the address (``hostname`` as urlsplit gives it:
    lower case, IPv6 without brackets)."""
    if ":" in hostname:  # only an IPv6 literal has colons here
        try:
            address = ipaddress.IPv6Address(hostname.replace("%25", "%", 1))
        except ValueError:
            raise ValueError("the URL's host is not a valid IPv6 address") from None
        plain = normalize_address(address)
        return plain.compressed, plain
    name = hostname[:-1] if hostname.endswith(".") else hostname
    if _NUMERIC_HOST.fullmatch(name):
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            raise ValueError("the URL's host is not a valid IPv4 address") from None
        return address.compressed, address
    return ascii_host_name(name), None


def ascii_host_name(name: str) -> str:
    """``name`` as a DNS name in ASCII (IDNA for non-ASCII labels), lower case, or :class:`ValueError`."""
    name = name.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            name = httpx.URL(scheme="http", host=name).raw_host.decode("ascii")
        except (httpx.InvalidURL, UnicodeError):
            raise ValueError("the host name is not a valid internationalised domain name") from None
    labels = name.split(".")
    if re.fullmatch(_NUMBER, labels[-1]):
        # WHATWG URL: a host ending in a number is an IPv4 address; this one is not a valid one.
        raise ValueError("the host ends in a number but is not a valid IPv4 address")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError("the host name is not a valid DNS name")
    return name


def normalize_address(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) as its IPv4 address: that is where a
    connection to it goes, so that is what is checked and dialled."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_problem(address: IPAddress) -> str | None:
    """Why a connection to ``address`` must be refused (a short phrase), or None for a public address."""
    address = normalize_address(address)
    if isinstance(address, ipaddress.IPv6Address):
        for nat64 in _NAT64:
            if address in nat64:  # DNS64: the IPv4 address behind the NAT64 gateway decides
                embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
                problem = address_problem(embedded)
                return f"a NAT64 address of {embedded}, {problem}" if problem else None
        if address.sixtofour is not None:
            problem = address_problem(address.sixtofour)
            if problem:
                return f"a 6to4 address of {address.sixtofour}, {problem}"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT, 100.64.0.0/10) address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a special-purpose address"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to for a TCP connection (``loop.getaddrinfo``), in the
    resolver's order, without repeats."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    found: list[str] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in found:
            found.append(str(sockaddr[0]))
    return found


class DestinationPolicy:
    """The SSRF rules and the allow-list (see the module's docstring).

    ``allow``: host names (exact) and addresses or CIDR blocks; a bad entry is a
    :class:`ValueError` at construction, so a typo stops start-up rather than opening a hole.
    """

    def __init__(self, allow: Iterable[str] = ()) -> None:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in allow:
            text = str(entry).strip()
            if not text:
                continue
            try:
                network = ipaddress.ip_network(text.strip("[]"), strict=False)
            except ValueError:
                try:
                    names.add(ascii_host_name(text))
                except ValueError:
                    raise ValueError(f"allow-list entry {text!r} is neither a host name nor an address/CIDR") from None
            else:
                mapped = normalize_address(network.network_address)
                if network.prefixlen == network.max_prefixlen and mapped != network.network_address:
                    network = ipaddress.ip_network(mapped)
                networks.append(network)
        self._names = frozenset(names)
        self._networks = tuple(networks)
        self._exact = frozenset(n.network_address for n in networks if n.num_addresses == 1)

    def __repr__(self) -> str:
        allowed = sorted(self._names) + [str(n) for n in self._networks]
        return f"{type(self).__name__}(allow={allowed!r})"

    async def resolve(self, target: Target, resolver: Resolver) -> list[IPAddress]:
        """The checked addresses to connect to for ``target``, in the resolver's order.

        Raises :class:`DestinationRefused` (before any DNS query for a metadata name, before any
        connection in every case) or :class:`ResolutionFailed`.
        """
        if (reason := self.refusal(target)) is not None:
            raise DestinationRefused(target.host, reason)
        if target.address is not None:
            addresses: list[IPAddress] = [target.address]
        else:
            try:
                answers = await resolver(target.host, target.port)
            except (OSError, UnicodeError) as exc:
                raise ResolutionFailed(target.host, f"did not resolve ({type(exc).__name__})") from None
            addresses = []
            for answer in answers:
                try:
                    address = normalize_address(ipaddress.ip_address(str(answer)))
                except ValueError:
                    raise DestinationRefused(target.host, "the resolver answered something that is not an address") from None
                if address not in addresses:
                    addresses.append(address)
            if not addresses:
                raise ResolutionFailed(target.host, "resolved to no address")
        self.check(target, addresses)
        return addresses

    def refusal(self, target: Target) -> str | None:
        """Why every connection to ``target`` would be refused whatever DNS answers (its host is an
        address, or a cloud metadata host name, that may not be reached), or None: then only
        :meth:`resolve`, when it connects, can tell (what a host name resolves to may change)."""
        if target.address is not None:
            problem = self.problem(target, target.address)
            return f"{problem} (not on the allow-list)" if problem is not None else None
        if target.host in METADATA_HOSTS and target.host not in self._names:
            return "a cloud metadata host name (not on the allow-list)"
        return None

    def check(self, target: Target, addresses: Sequence[IPAddress]) -> None:
        """Raise :class:`DestinationRefused` unless every one of ``addresses`` may be reached for ``target``."""
        for address in addresses:
            problem = self.problem(target, address)
            if problem is not None:
                if target.address is not None:
                    reason = f"{problem} (not on the allow-list)"
                else:
                    reason = f"resolves to {address.compressed}, {problem} (not on the allow-list)"
                raise DestinationRefused(target.host, reason)

    def problem(self, target: Target, address: IPAddress) -> str | None:
        """Why ``address`` may not be reached for ``target`` under this allow-list, or None."""
        address = normalize_address(address)
        problem = address_problem(address)
        if problem is None:
            return None
        if address in METADATA_ADDRESSES:
            if address in self._exact or (target.host in METADATA_HOSTS and target.host in self._names):
                return None
            return problem
        if target.host in self._names:
            return None
        if any(address.version == n.version and address in n for n in self._networks):
            return None
        return problem
