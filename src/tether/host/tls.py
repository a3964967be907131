"""How the host trusts a relay: certificates verified (system store or a private CA), no plain text off this machine.

Rules (issue 8, "Transport security"):

- a relay reached over ``https://`` / ``wss://`` must show a certificate that verifies,
  against the system's trust store, or only against ``--relay-ca FILE`` (``relay.ca`` in
  the config) for a relay with a private CA;
- a plain ``http://`` / ``ws://`` relay is refused unless it is on this machine (127.0.0.0/8,
  ::1, ``localhost``): anyone on the way could read the session URL's routing and
  credentials, and end-to-end encryption does not hide who talks to whom or when. The
  embedded relay is on 127.0.0.1; a phone reaches it through a tunnel, which is https.

The CA chosen for this run lives in a context variable set by the composition root
(``use_relay_ca``), so every connection to the relay (the WebSocket in ``relay_link.py``,
the account calls in ``device.py``) verifies the same way without threading it through
every constructor. Unset, the ``relay.ca`` config key is read.
"""

from __future__ import annotations

import contextvars
import ipaddress
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tether.errors import InsecureRelay, TlsUnusable

_RELAY_CA: contextvars.ContextVar[Path | None] = contextvars.ContextVar("relay_ca", default=None)
LOOPBACK_NAMES = {"localhost"}


def use_relay_ca(ca: Path | None) -> None:
    """Trust only ``ca`` for relay certificates from now on in this context (None: the config, else the system)."""
    _RELAY_CA.set(ca)


def relay_ca() -> Path | None:
    """The private CA relay certificates must chain to: the one in use, else ``relay.ca`` from the config."""
    chosen = _RELAY_CA.get()
    if chosen is not None:
        return chosen
    from tether.config import Config

    configured = Config().get("relay.ca")
    return Path(configured).expanduser() if configured else None


def client_context(ca: Path | None = None) -> ssl.SSLContext:
    """A TLS client context that verifies certificates and names: against ``ca`` only, or the system store."""
    try:
        return ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsUnusable(f"cannot use {ca} as the relay's CA: {exc}") from None


def relay_context() -> ssl.SSLContext:
    """The context for this run's relay (see ``relay_ca``)."""
    return client_context(relay_ca())


def httpx_verify(verify: Any = True) -> Any:
    """What to pass httpx as ``verify`` for the relay: ``True`` means this run's relay trust."""
    return relay_context() if verify is True else verify


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: 127.0.0.0/8, ::1 or localhost."""
    name = host.strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_relay_url(url: str) -> None:
    """Refuse (InsecureRelay) a plain http:// or ws:// relay that is not on this machine."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "ws") and not is_loopback(parts.hostname or ""):
        raise InsecureRelay(
            f"refusing the relay {url}: plain {parts.scheme}:// is only for a relay on this machine, "
            "anywhere else the session's traffic and credentials would cross the network unprotected"
        )
