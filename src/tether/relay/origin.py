"""Which browser pages may open a WebSocket to the relay (issue 9), without I/O.

Rule: a connection whose upgrade carries an ``Origin`` (every browser sends one) is
admitted only if that origin is the relay's own: the configured public URL's origin, or
the address the connection itself came to (its ``Host``), loopback names (``localhost``,
``127.0.0.1``, ``::1``) counting as one host at the same port. A connection without an
``Origin`` is not a browser's (a host, a script): it is judged by its credential alone,
as nothing stops a program from sending any Origin it likes.

Why both: the viewer page connects to ``location.host``, so the page's origin and the
Host match unless something in front rewrites the Host. The tunnels keep it
(``tailscale serve`` sets the proxied request's Host to the incoming one,
``ipn/ipnlocal/serve.go``; cloudflared keeps it unless ``httpHostHeader`` is set);
a reverse proxy that rewrites it is covered by ``--public-url``. A page on another site, or on another port of this
machine (a local dev server), is a different origin and is refused before any credential
is read (RFC 6455 section 10.2: servers not meant for every page must check the Origin).
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a serialized origin, None for ``null`` or anything not http(s)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _host_header(host: str, default_port: int) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{host.strip()}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port or default_port


def _same_host(one: str, other: str) -> bool:
    return one == other or (one in LOOPBACK and other in LOOPBACK)


def allowed(origin: str | None, host: str | None, public_origin: str = "") -> bool:
    """Whether a WebSocket upgrade with ``Origin: origin`` and ``Host: host`` may proceed (see the module doc)."""
    if origin is None:
        return True
    page = parse_origin(origin)
    if page is None:
        return False
    if public_origin and parse_origin(public_origin) == page:
        return True
    scheme, name, port = page
    target = _host_header(host, DEFAULT_PORTS[scheme]) if host else None
    return target is not None and _same_host(name, target[0]) and port == target[1]
