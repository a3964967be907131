"""Publishing the embedded relay through the outbound tunnel of a tool the user already runs.

The embedded relay listens on 127.0.0.1 only, which a phone cannot open. ``--tunnel
cloudflared`` or ``--tunnel tailscale`` (``remote.tunnel`` in the config) has that tool
publish it: the tool dials out, so no inbound port opens on this machine. The host keeps
talking to the relay on 127.0.0.1; only the URL it announces (and the QR code) uses the
tool's https address.

Two parts. Pure: each tool's command line and a reader of what it prints (``feed`` lines
in, ``address`` / ``ready`` / ``last`` out), ``choose_relay`` (flags before config) and
``is_loopback`` / ``reach_note`` (a URL that opens on this machine only says so).
Asyncio: ``Tunnel`` starts the tool, waits at most ``START_TIMEOUT`` seconds for its
address, watches it (``lost`` resolves with one line if it exits on its own) and stops it.

What the real tools print, and so what the readers expect:

- ``cloudflared tunnel --url http://127.0.0.1:PORT`` asks for a quick tunnel (no account)
  and logs on stderr; the address sits in an ASCII box (cloudflared
  ``cmd/cloudflared/tunnel/quick_tunnel.go``, ``AsciiBox``)::

      2023-01-16T08:32:58Z INF +----------------------------------------------------------------+
      2023-01-16T08:32:58Z INF |  Your quick Tunnel has been created! Visit it at (it may take  ...
      2023-01-16T08:32:58Z INF |  https://oklahoma-solo-younger-truck.trycloudflare.com         |

  It carries traffic once it logs ``Registered tunnel connection``. SIGTERM stops it.
- ``tailscale serve --https=443 http://127.0.0.1:PORT`` (the CLI of tailscale 1.52 and
  later) runs in the foreground and prints on stdout (``cmd/tailscale/cli/serve_v2.go``,
  ``messageForPort``)::

      Available within your tailnet:

      https://laptop.tail1234.ts.net/
      |-- proxy http://127.0.0.1:8787

      Press Ctrl+C to exit.

  Run in the foreground (not ``--bg``), its serve config belongs to this process's session
  with tailscaled, which deletes it when the process ends (``DeleteForegroundSession``):
  nothing is left behind, even if tether is killed. SIGINT (Ctrl+C) stops it. A tailnet
  without HTTPS answers "Serve is not enabled on your tailnet" with a link and waits: that
  link is what the user is shown when no address comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from tether.errors import RelayConflict, TunnelFailed
from tether.host.sanitize import visible

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0  # seconds a tool gets to print its address (cloudflared takes 2-6 s)
STOP_GRACE = 5.0  # seconds a tool gets to stop on its own signal before SIGKILL
SHOWN_CHARS = 300  # of the tool's last line, in an error message

_COLOURS = re.compile(r"\x1b\[[0-9;]*m")
_QUICK_TUNNEL = re.compile(r"https://[a-z0-9-]+\.trycloudflare\.com\b", re.IGNORECASE)
_REGISTERED = "Registered tunnel connection"
_SERVE_HEADINGS = ("Available within your tailnet:", "Available on the internet:")


class Output:
    """What a tunnel tool printed so far: ``feed`` it each line, read ``address``, ``ready``, ``last``.

    ``address`` is the public https base once the tool gave it; ``ready`` says the tunnel
    carries traffic; ``last`` is the last line with text, controls made visible.
    """

    def __init__(self) -> None:
        self.address: str | None = None
        self.ready = False
        self.last = ""

    def feed(self, line: str) -> None:
        """Read one line of the tool's output."""
        text = visible(_COLOURS.sub("", line).strip())
        if text:
            self.last = text
            self._read(text)

    def _read(self, text: str) -> None:
        raise NotImplementedError


class CloudflaredOutput(Output):
    """cloudflared's quick tunnel log: the trycloudflare address, then a registered connection."""

    def _read(self, text: str) -> None:
        if self.address is None:
            if (found := _QUICK_TUNNEL.search(text)) is not None:
                self.address = found.group(0).lower()
        elif _REGISTERED in text:
            self.ready = True


class TailscaleOutput(Output):
    """``tailscale serve``'s message: the https line under its "Available ..." heading."""

    def __init__(self) -> None:
        super().__init__()
        self._heading = False

    def _read(self, text: str) -> None:
        if text in _SERVE_HEADINGS:
            self._heading = True
        elif self._heading and self.address is None and text.startswith("https://"):
            # tailscale sets the serve config before it prints this, so it is ready.
            self.address = text.split()[0].rstrip("/")
            self.ready = True


@dataclass(frozen=True, slots=True)
class Tool:
    """A tunnel tool: how to run it for a local URL, how to read it, how to stop it, where to get it."""

    name: str
    arguments: tuple[str, ...]  # the local URL goes last
    output: Callable[[], Output]
    stop_signal: signal.Signals
    install: str

    def command(self, local_url: str) -> tuple[str, ...]:
        """The command line that publishes ``local_url``."""
        return (self.name, *self.arguments, local_url)


TOOLS = {
    tool.name: tool
    for tool in (
        Tool(
            "cloudflared",
            ("tunnel", "--no-autoupdate", "--url"),
            CloudflaredOutput,
            signal.SIGTERM,
            "https://github.com/cloudflare/cloudflared/releases (or `brew install cloudflared`)",
        ),
        Tool(
            "tailscale",
            ("serve", "--https=443"),
            TailscaleOutput,
            signal.SIGINT,
            "https://tailscale.com/download, then `tailscale up` (HTTPS must be enabled in the tailnet)",
        ),
    )
}


def tool(name: str) -> Tool:
    """The tool called ``name``; TunnelFailed naming the known ones otherwise."""
    if name not in TOOLS:
        raise TunnelFailed(f"unknown tunnel {name!r}: use cloudflared or tailscale")
    return TOOLS[name]


def choose_relay(
    relay: str | None, tunnel: str | None, config_relay: str | None, config_tunnel: str | None
) -> tuple[str | None, str | None]:
    """The relay URL and the tunnel tool of a session, from the flags first, then the config.

    A tunnel publishes the relay tether runs itself, so a session has a relay URL or a
    tunnel, never both: the two flags together are refused, a flag overrides what the config
    says about either, and a config setting both ``relay.url`` and ``remote.tunnel`` is
    refused. Raises RelayConflict, or TunnelFailed for an unknown tool.
    """
    for name in (tunnel, config_tunnel):
        if name is not None:
            tool(name)
    if relay and tunnel:
        raise RelayConflict("--relay and --tunnel cannot be used together: --tunnel publishes tether's own relay")
    if relay or tunnel:
        return relay or None, tunnel
    if config_relay and config_tunnel:
        raise RelayConflict(
            "the config sets both relay.url and remote.tunnel; pass --relay or --tunnel, or change one of them"
        )
    return config_relay or None, config_tunnel


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine only (127.0.0.0/8, ::1, localhost), which no phone can open."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reach_note(url: str) -> str | None:
    """One line saying how a phone can reach the session, when ``url`` opens on this machine only."""
    if not is_loopback(url):
        return None
    return (
        "This URL opens on this machine only; a phone cannot reach it. For a phone, start with "
        "--tunnel cloudflared (or --tunnel tailscale), or use a relay of your own: --relay URL (docs/deploy.md)."
    )


def exit_description(code: int) -> str:
    """``exit status N``, or ``killed by SIGNAME`` for a negative (signal) return code."""
    if code >= 0:
        return f"exit status {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


class Tunnel:
    """``async with Tunnel(tool, local_url) as tunnel``: ``tunnel.url`` is the public address.

    Entering starts the tool in its own process group and returns once it printed its
    address and carries traffic (or, if it printed the address but not yet that, when
    ``start_timeout`` runs out). It raises TunnelFailed, having stopped the tool, if the
    tool is not installed, exits first, or prints no address within ``start_timeout``
    seconds; the message names the command and the last line it printed. While in use,
    ``lost`` resolves with one line if the tool exits on its own. Leaving stops the tool:
    its own stop signal, then SIGKILL after ``stop_grace`` seconds.
    """

    def __init__(
        self, tool: Tool, local_url: str, *, start_timeout: float = START_TIMEOUT, stop_grace: float = STOP_GRACE
    ) -> None:
        self.tool = tool
        self.command = tool.command(local_url)
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.url = ""
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.output = tool.output()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._stopping = False

    @property
    def pid(self) -> int | None:
        """The tool's process id while it runs."""
        return self._process.pid if self._process is not None else None

    async def __aenter__(self) -> Tunnel:
        name = self.tool.name
        path = shutil.which(name)
        if path is None:
            raise TunnelFailed(
                f"--tunnel {name}: `{name}` is not installed (not on PATH); get it from {self.tool.install}"
            )
        try:
            self._process = await asyncio.create_subprocess_exec(
                path,
                *self.command[1:],
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,  # cloudflared logs on stderr, tailscale prints on stdout
                start_new_session=True,  # a Ctrl-C at the terminal is for tether, which stops the tool in turn
            )
        except OSError as exc:
            raise TunnelFailed(f"--tunnel {name}: cannot run {path}: {exc.strerror or exc}") from None
        self._reader = asyncio.create_task(self._read(), name=f"tunnel {name}")
        try:
            await self._wait_for_address()
        except BaseException:
            await self._stop()
            raise
        return self

    async def _wait_for_address(self) -> None:
        assert self._reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while not self.output.ready and not self._reader.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._changed.clear()  # no await since the checks above: nothing was missed
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                break
        shown = " ".join(self.command)
        last = self.output.last[:SHOWN_CHARS] or "nothing"
        if self._reader.done():
            assert self._process is not None
            code = self._process.returncode
            ended = "its output could not be read" if code is None else exit_description(code)
            raise TunnelFailed(f"--tunnel: `{shown}` stopped ({ended}) before the tunnel was up; it printed: {last}")
        if self.output.address is None:
            raise TunnelFailed(
                f"--tunnel: `{shown}` gave no address within {self.start_timeout:g} s; it last printed: {last}"
            )
        self.url = self.output.address

    async def _read(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        while True:
            try:
                raw = await process.stdout.readline()
            except ValueError:  # one line over the stream's limit: skip it, keep reading
                continue
            if not raw:
                break
            line = raw.decode(errors="replace")
            self.output.feed(line)
            log.debug("%s: %s", self.tool.name, line.rstrip())
            self._changed.set()
        code = await process.wait()
        self._changed.set()
        if self.url and not self._stopping and not self.lost.done():
            last = self.output.last[:SHOWN_CHARS] or "nothing"
            self.lost.set_result(f"the {self.tool.name} tunnel stopped ({exit_description(code)}); it printed: {last}")

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        """Stop the tool (its signal, then SIGKILL) and the reader; ``lost`` stays unresolved."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            self._signal(self.tool.stop_signal)
            try:
                async with asyncio.timeout(self.stop_grace):
                    await process.wait()
            except TimeoutError:
                self._signal(signal.SIGKILL)
                await process.wait()
        if self._reader is not None:
            # A helper the tool left behind may hold the pipe open: the reader gets a grace, not forever.
            done, _ = await asyncio.wait({self._reader}, timeout=self.stop_grace)
            if not done:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader

    def _signal(self, sig: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, sig)  # its own group (start_new_session): helpers go too
