"""Remote Control for a session: the gates, the relay (embedded or given), the link.

Turning Remote Control on checks, in this order, that the folder is trusted and that
permission checks are not skipped, then reaches the relay: the one given with --relay
(or ``relay.url``), else an embedded relay from the factory the composition root hands
in (the CLI: a relay inside this process on 127.0.0.1). The host never imports the relay.
With a tunnel (``--tunnel``, ``remote.tunnel``: host/tunnel.py) the embedded relay is
published through that tool: the link still dials 127.0.0.1, the URL shown is the tool's
https address, and the tool stopping loses Remote Control as a dropped relay would. A URL
that opens on this machine only says so, with the ways to reach a phone.

Remote is also the link's ``Questions`` (host/relay_link.py): a device asking to pair is
asked about on the terminal (``console``), lines about devices are printed, and a new URL
(the old one spent, refused or expired) is shown like the first. With no terminal to ask
(``console`` None), a new device waits for nothing: only ``--accept-device`` admits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import segno
from rich.console import Console as RichConsole
from rich.markup import escape as rich_escape

from tether.auth.owner import owned_session_id
from tether.errors import PermissionsSkipped, RelayConflict, UserError
from tether.host.device import DeviceIdentity, Devices, initiation_token
from tether.host.relay_link import RelayLink
from tether.host.session import HostSession
from tether.host.trust import TrustStore
from tether.host.tunnel import Tunnel, reach_note
from tether.host.tunnel import tool as tunnel_tool
from tether.protocol.messages import Ended

if TYPE_CHECKING:
    from tether.host.console import Console

ACCEPT_WARNING = (
    "--accept-device: any browser that opens this URL is admitted without asking. "
    "Use it only for unattended sessions on a URL nobody else can see."
)

# Starts a relay for this session and yields its URL and this machine's device there (the CLI's embedded relay).
RelayFactory = Callable[[], AbstractAsyncContextManager[tuple[str, DeviceIdentity]]]


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
    """Remote Control of one session; ``start`` and ``stop`` may alternate.

    ``ended`` resolves with a reason when the session's rules ended Remote Control by
    themselves (the agent could not be kept in a mode that asks).
    """

    def __init__(
        self,
        session: HostSession,
        relay: str | None,
        out: RichConsole,
        as_json: bool = False,
        embedded: RelayFactory | None = None,
        tunnel: str | None = None,
        console: Console | None = None,
        accept_device: bool = False,
    ) -> None:
        self.session = session
        self.console = console
        self.accept_device = accept_device
        self.relay = relay
        self.tunnel = tunnel  # publish the embedded relay through this tool (host/tunnel.py)
        self.out = out
        self.as_json = as_json
        self.embedded = embedded
        self.link: RelayLink | None = None
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def active(self) -> bool:
        return self.link is not None

    async def start(self, skip_permissions: bool = False) -> RelayLink:
        """Turn Remote Control on and print the session URL (or the JSON line)."""
        check_allowed(self.session.root, skip_permissions)
        if not await self.session.set_remote(True):
            raise UserError(f"Remote Control cannot start: {self.session.remote_refusal}.")
        if self.ended.done():
            self.ended = asyncio.get_running_loop().create_future()
        self.session.on_remote_end = self._ended_by_rule
        stack = contextlib.AsyncExitStack()
        tunnel: Tunnel | None = None
        try:
            if self.relay is not None and self.tunnel is not None:
                raise RelayConflict("--relay and --tunnel cannot be used together: --tunnel publishes tether's relay")
            relay: str | None = self.relay
            if relay is None:
                if self.embedded is None:
                    raise UserError("no relay given: use --relay URL or set relay.url")
                local, identity = await stack.enter_async_context(self.embedded())
                relay = local
                if self.tunnel is not None:
                    self.out.print(f"[dim]Publishing the session through {self.tunnel}…[/dim]", highlight=False)
                    tunnel = await stack.enter_async_context(Tunnel(tunnel_tool(self.tunnel), local))
            else:
                identity = Devices().require(relay)
            assert relay is not None
            window = self.outage_window()
            self.session.core.info["outage_window"] = window  # the viewer counts down from it while away
            # An owned session id (auth/owner.py): only this device may take it back after an outage.
            link = RelayLink(self.session, relay, owned_session_id(identity.device, os.urandom),
                             public_url=tunnel.url if tunnel else None, questions=self,
                             accept_device=self.accept_device, initiate=lambda: initiation_token(identity),
                             outage_window=window)  # fmt: skip
            await link.connect(await initiation_token(identity))
        except BaseException:
            await stack.aclose()
            self.session.on_remote_end = None
            await self.session.set_remote(False)
            raise
        self._stack = stack
        self.link = link
        self.session.sinks.append(link)
        if tunnel is not None:
            tunnel.lost.add_done_callback(lambda lost: _lose(link, lost))
        self._announce(link)
        return link

    @staticmethod
    def outage_window() -> int:
        """``remote.outage_window``: seconds the relay link may stay away before Remote Control ends."""
        from tether.config import Config

        return int(Config().get("remote.outage_window"))

    def _ended_by_rule(self, reason: str) -> None:
        if self.link is not None and not self.ended.done():
            self.ended.set_result(reason)
            self.session.spawn(self.stop(f"Remote Control ended: {reason}"), "ending Remote Control")

    def _announce(self, link: RelayLink, why: str | None = None) -> None:
        if self.as_json:
            line = {"url": link.url, "session_id": link.session_id, **({"new_url": why} if why else {})}
            print(json.dumps(line), flush=True)
            if why is None and self.accept_device:
                self.out.print(f"[yellow]{ACCEPT_WARNING}[/yellow]", highlight=False)
            return
        note = reach_note(link.url)
        where = "Open this URL in a browser on this machine:" if note else "Open this URL on your phone:"
        if why is None:
            self.out.print(f"[bold green]Remote Control is on.[/bold green] {where}")
        else:
            self.out.print(f"[bold]A new URL for this session[/bold] ({why}). {where}", highlight=False)
        self.out.print(link.url, markup=False, highlight=False, soft_wrap=True)
        self.out.print(qr_text(link.url), markup=False, highlight=False)
        if note:
            self.out.print(f"[yellow]{note}[/yellow]", highlight=False, soft_wrap=True)
        if self.accept_device:
            self.out.print(f"[yellow]{ACCEPT_WARNING}[/yellow]", highlight=False)
        else:
            self.out.print("[dim]The URL works once, for 10 minutes; you confirm each new device here by its "
                           "6-digit code.[/dim]")  # fmt: skip

    # -- the link's Questions ------------------------------------------------------------

    def ask(self, question: str, answer: Callable[[bool], None]) -> None:
        if self.console is not None:
            self.console.ask(question, answer)
            self.out.print("[dim]Compare the code with the browser's; answer y here, or run `tether devices accept` "
                           "in another shell.[/dim]")  # fmt: skip
        else:
            self.out.print(f"[yellow]{rich_escape(question)}[/yellow] Answer with `tether devices accept` in another "
                           "shell.", highlight=False)  # fmt: skip

    def withdraw(self, why: str) -> None:
        if self.console is not None:
            self.console.withdraw(why)

    def say(self, text: str) -> None:
        self.out.print(f"[cyan]{rich_escape(text)}[/cyan]", highlight=False)

    def new_url(self, url: str, why: str) -> None:
        if self.link is not None:
            self._announce(self.link, why)

    async def stop(self, reason: str = "Remote Control was turned off") -> None:
        """Tell the viewer it is over, close the link, stop an embedded relay."""
        link, self.link = self.link, None
        self.session.on_remote_end = None
        if not self.session.ended.done():
            await self.session.set_remote(False)
        if link is not None:
            if link in self.session.sinks:
                self.session.sinks.remove(link)
                if not self.session.ended.done():  # a closing session has said "ended" already
                    link.deliver(Ended(reason=reason))
            await link.close()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()


def _lose(link: RelayLink, tunnel_lost: asyncio.Future[str]) -> None:
    """The tunnel stopped: phones are cut off, so the link counts as lost (one line, then Remote Control ends)."""
    if not tunnel_lost.cancelled() and not link.lost.done():
        link.lost.set_result(tunnel_lost.result())

