"""Remote Control for a session: the gates, the relay (embedded or given), the link.

Turning Remote Control on checks, in this order, that the folder is trusted and that
permission checks are not skipped, then reaches the relay: the one given with --relay
(or ``relay.url``), else a relay started inside this process on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import segno
from rich.console import Console as RichConsole

from tether.errors import PermissionsSkipped, UserError
from tether.host.relay_link import RelayLink
from tether.host.session import HostSession
from tether.host.trust import TrustStore
from tether.protocol.messages import Ended


def check_allowed(root: Path, skip_permissions: bool, trust: TrustStore | None = None) -> None:
    """Raise the UserError that stops Remote Control here, if any."""
    (trust or TrustStore()).require(root)
    if skip_permissions:
        raise PermissionsSkipped(
            "--dangerously-skip-permissions cannot be used with Remote Control: "
            "every edit and command must be approved by a person."
        )


def qr_text(url: str) -> str:
    """The URL as a QR code drawn with terminal block characters."""
    buffer = io.StringIO()
    segno.make(url, error="l").terminal(out=buffer, compact=True)
    return buffer.getvalue()


class Remote:
    """Remote Control of one session; ``start`` and ``stop`` may alternate."""

    def __init__(self, session: HostSession, relay: str | None, out: RichConsole, as_json: bool = False) -> None:
        self.session = session
        self.relay = relay
        self.out = out
        self.as_json = as_json
        self.link: RelayLink | None = None
        self._embedded: contextlib.AsyncExitStack | None = None

    @property
    def active(self) -> bool:
        return self.link is not None

    async def start(self, skip_permissions: bool = False) -> RelayLink:
        """Turn Remote Control on and print the session URL (or the JSON line)."""
        check_allowed(self.session.root, skip_permissions)
        if not await self.session.set_remote(True):
            raise UserError(
                f"the agent is in mode {self.session.controls.current_mode!r}, which approves tools by itself, "
                "and offers no mode that asks first; Remote Control needs one."
            )
        relay = self.relay
        stack = contextlib.AsyncExitStack()
        try:
            if relay is None:
                # Imported here: a session without Remote Control never loads the relay.
                from tether.relay.server import EmbeddedRelay, RelayConfig

                embedded = await stack.enter_async_context(EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0)))
                relay = embedded.url
            link = RelayLink(self.session, relay)
            await link.connect()
        except BaseException:
            await stack.aclose()
            await self.session.set_remote(False)
            raise
        self._embedded = stack
        self.link = link
        self.session.sinks.append(link)
        self._announce(link)
        return link

    def _announce(self, link: RelayLink) -> None:
        if self.as_json:
            print(json.dumps({"url": link.url, "session_id": link.session_id}), flush=True)
            return
        self.out.print("[bold green]Remote Control is on.[/bold green] Open this URL on your phone:")
        self.out.print(link.url, markup=False, highlight=False, soft_wrap=True)
        self.out.print(qr_text(link.url), markup=False, highlight=False)
        self.out.print("[dim]Treat this URL like a password: whoever has it can drive this session.[/dim]")

    async def stop(self, reason: str = "Remote Control was turned off") -> None:
        """Tell the viewer it is over, close the link, stop an embedded relay."""
        link, self.link = self.link, None
        if not self.session.closing:
            await self.session.set_remote(False)
        if link is not None:
            if link in self.session.sinks:
                self.session.sinks.remove(link)
                if not self.session.closing:  # a closing session has said "ended" already
                    link.deliver(Ended(reason=reason))
            await link.close()
        if self._embedded is not None:
            await self._embedded.aclose()
            self._embedded = None


def refuse_sandbox() -> None:
    """The sandbox is not built yet: say so instead of running unconfined."""
    raise UserError(
        "--sandbox is not available in this version of tether; tools would run unconfined. "
        "Run without --sandbox, or wait for the sandbox release."
    )
