"""An ACP agent that tries to escape, for the sandbox tests: ``python probe_agent.py SPEC_JSON``.

Any prompt runs every probe in SPEC (in the agent's own process, natively, as Claude
Code edits and runs natively) and replies with one line ``PROBES {json}``, each probe
``"ok ..."`` or ``"blocked: <error>"``. SPEC keys, each optional:

    write    a path outside the project to create
    read     a file to read (e.g. ~/.ssh/id_ed25519)
    tcp      [host, port] of a server to connect to and read one line from
    unix     the path of a Unix socket to connect to
    secret   a value to look for in /proc/*/environ of every visible process and our own
    http     a base-URL variable whose server to GET (the allowed way out), e.g. "ANTHROPIC_BASE_URL"
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any, cast

from acp import PROTOCOL_VERSION, Agent, Client, run_agent, update_agent_message_text
from acp.schema import AgentCapabilities, Implementation, InitializeResponse, NewSessionResponse, PromptResponse

SPEC: dict[str, Any] = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}


def attempt(probe: Any) -> str:
    try:
        return f"ok {probe()}"
    except Exception as exc:  # every failure is the answer
        return f"blocked: {type(exc).__name__}: {exc}"


def write(path: str) -> str:
    Path(path).write_text("escaped\n")
    return path


def read(path: str) -> str:
    return Path(path).read_text()[:40]


def tcp(address: list[Any]) -> str:
    with socket.create_connection((address[0], int(address[1])), timeout=5) as sock:
        return sock.recv(100).decode()


def unix(path: str) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        return sock.recv(100).decode()


def secret(value: str) -> str:
    found = [name for name, v in os.environ.items() if value in v]
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if value.encode() in environ.read_bytes():
                cmdline = (environ.parent / "cmdline").read_bytes().replace(b"\0", b" ")[:60].decode(errors="replace")
                found.append(f"{environ} ({cmdline})")
        except OSError:
            continue
    if not found:
        raise LookupError("not visible")
    return ",".join(found)


def http(variable: str) -> str:
    with urllib.request.urlopen(os.environ[variable].rstrip("/") + "/healthz", timeout=5) as response:
        return str(response.read().decode())


PROBES = {"write": write, "read": read, "tcp": tcp, "unix": unix, "secret": secret, "http": http}


class ProbeAgent:
    def on_connect(self, conn: Client) -> None:
        self.client = conn

    async def initialize(self, protocol_version: int, **_: Any) -> InitializeResponse:
        return InitializeResponse(
            protocol_version=PROTOCOL_VERSION,
            agent_capabilities=AgentCapabilities(),
            agent_info=Implementation(name="probe-agent", version="1"),
        )

    async def new_session(self, cwd: str, **_: Any) -> NewSessionResponse:
        return NewSessionResponse(session_id="probe")

    async def prompt(self, prompt: list[Any], session_id: str, **_: Any) -> PromptResponse:
        results = {name: attempt(lambda n=name: PROBES[n](SPEC[n])) for name in PROBES if name in SPEC}
        await self.client.session_update(
            session_id=session_id, update=update_agent_message_text("PROBES " + json.dumps(results))
        )
        return PromptResponse(stop_reason="end_turn")

    async def cancel(self, session_id: str, **_: Any) -> None:
        return None


if __name__ == "__main__":
    asyncio.run(run_agent(cast(Agent, ProbeAgent())))
