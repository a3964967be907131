"""Stand-ins for `cloudflared` and `tailscale`, written by the tests into a folder put first on PATH.

One Python script under both names behaves as the tool it is called as: it takes the real
command line (``cloudflared tunnel --no-autoupdate --url URL``, ``tailscale serve
--https=443 URL``), prints what the real tool prints, in the same shape and on the same
stream, and really forwards: a TCP forwarder on a free 127.0.0.1 port carries every
connection to the URL it was asked to publish. The address it prints has the real format
(``https://<words>.trycloudflare.com``, ``https://<machine>.<tailnet>.ts.net/``); tests
reach the session through the forwarder's port, which the stand-in writes to its state file.

``STANDIN_STATE`` names that JSON file (``pid``, ``port``, ``argv``, and ``stopped_by``: the
signal that stopped it). ``STANDIN_MODE`` picks the behaviour: ``ok``; ``silent`` (it logs,
but no address ever comes: cloudflared still requesting, tailscale asking for HTTPS to be
enabled); ``fail`` (the error line of a tool that cannot work here, then exit status 1).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

CLOUDFLARED_ADDRESS = "https://standin-quiet-harbor-lantern.trycloudflare.com"
TAILSCALE_ADDRESS = "https://standin-laptop.tail1234.ts.net"

SCRIPT = r"""
import asyncio
import json
import os
import signal
import sys
from urllib.parse import urlsplit

NAME = os.path.basename(sys.argv[0])
MODE = os.environ.get("STANDIN_MODE", "ok")
STATE = os.environ["STANDIN_STATE"]
CLOUDFLARED_ADDRESS = "@CLOUDFLARED_ADDRESS@"
TAILSCALE_ADDRESS = "@TAILSCALE_ADDRESS@"
STAMP = "2024-05-01T10:00:00Z"


def save(**fields):
    try:
        with open(STATE) as file:
            state = json.load(file)
    except FileNotFoundError:
        state = {}
    state.update(fields)
    with open(STATE + ".tmp", "w") as file:
        json.dump(state, file)
    os.replace(STATE + ".tmp", STATE)


def target(argv):
    if NAME == "cloudflared":
        if argv[:1] != ["tunnel"] or "--url" not in argv:
            sys.exit(f"stand-in cloudflared: unexpected arguments {argv}")
        return argv[argv.index("--url") + 1]
    if argv[:1] != ["serve"] or "--bg" in argv:
        sys.exit(f"stand-in tailscale: unexpected arguments {argv}")
    return argv[-1]


def log(level, text):
    # cloudflared logs on stderr, one line at a time, "<time> <LVL> <message>".
    sys.stderr.write(f"{STAMP} {level} {text}\n")
    sys.stderr.flush()


def ascii_box(lines, padding=2):
    # As cloudflared's AsciiBox (cmd/cloudflared/tunnel/quick_tunnel.go).
    width = max(len(line) for line in lines)
    border = "+" + "-" * (width + 2 * padding) + "+"
    spacer = " " * padding
    return [border, *(f"|{spacer}{line}{' ' * (width - len(line))}{spacer}|" for line in lines), border]


def cloudflared(url):
    log("INF", "Thank you for trying Cloudflare Tunnel. Doing so, without a Cloudflare account, is a quick way to "
        "experiment and try it out. However, be aware that these account-less Tunnels have no uptime guarantee. "
        "If you intend to use Tunnels in production you should use a pre-created named tunnel by following: "
        "https://developers.cloudflare.com/cloudflare-one/connections/connect-apps")
    log("INF", "Requesting new quick Tunnel on trycloudflare.com...")
    if MODE == "silent":
        return
    if MODE == "fail":
        log("ERR", 'failed to request quick Tunnel: Post "https://api.trycloudflare.com/tunnel": dial tcp: '
            "lookup api.trycloudflare.com: no such host")
        sys.exit(1)
    box = ["Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):",
           CLOUDFLARED_ADDRESS]
    for line in ascii_box(box):
        log("INF", line)
    log("INF", "Version 2024.8.2")
    log("INF", f"Settings: map[ha-connections:1 no-autoupdate:true protocol:quic url:{url}]")
    log("INF", "Registered tunnel connection connIndex=0 connection=bb527b3a-8a27-467b-9fca-84972898be5c "
        "event=0 ip=198.41.192.7 location=ams01 protocol=quic")


def tailscale(url):
    if MODE == "fail":
        sys.stderr.write("failed to connect to local Tailscale daemon for /localapi/v0/serve-config; not running? "
                         "Error: dial unix /var/run/tailscale/tailscaled.sock: connect: no such file or directory\n")
        sys.exit(1)
    if MODE == "silent":
        print("Serve is not enabled on your tailnet.\nTo enable, visit:\n\n         "
              "https://login.tailscale.com/f/serve?node=nSTANDIN", flush=True)
        return
    # tailscale's messageForPort, foreground mode, on stdout.
    print(f"Available within your tailnet:\n\n{TAILSCALE_ADDRESS}/\n|-- proxy {url}\n\nPress Ctrl+C to exit.",
          flush=True)


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main():
    argv = sys.argv[1:]
    url = target(argv)
    origin = urlsplit(url)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop(sig):
        save(stopped_by=sig.name)
        stopped.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)

    async def forward(reader, writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(origin.hostname, origin.port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0)
    save(pid=os.getpid(), port=server.sockets[0].getsockname()[1], argv=argv)
    (cloudflared if NAME == "cloudflared" else tailscale)(url)
    await stopped.wait()
    server.close()


asyncio.run(main())
"""


@dataclass(frozen=True)
class StandIns:
    """The folder holding both stand-ins and the state file they write."""

    bin_dir: Path
    state: Path

    def env(self, env: dict[str, str], mode: str = "ok") -> dict[str, str]:
        """``env`` with the stand-ins first on PATH, their state file and ``mode``."""
        path = os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])
        return env | {"PATH": path, "STANDIN_STATE": str(self.state), "STANDIN_MODE": mode}

    def read(self) -> dict[str, object]:
        """What the stand-in wrote: pid, forwarder port, argv, the signal that stopped it."""
        return dict(json.loads(self.state.read_text()))

    def port(self) -> int:
        """The forwarder's port on 127.0.0.1."""
        port = self.read()["port"]
        assert isinstance(port, int)
        return port


def install(folder: Path) -> StandIns:
    """Write `cloudflared` and `tailscale` into ``folder``/bin (run by this Python)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    source = SCRIPT.replace("@CLOUDFLARED_ADDRESS@", CLOUDFLARED_ADDRESS).replace(
        "@TAILSCALE_ADDRESS@", TAILSCALE_ADDRESS
    )
    for name in ("cloudflared", "tailscale"):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{source}")
        path.chmod(0o755)
    return StandIns(bin_dir, folder / "standin-state.json")
