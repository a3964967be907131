"""AgentConnection: the agent process and its ACP connection, and nothing else.

It starts the agent (``initialize``), opens the session (``session/new``; an agent that
needs a login first raises LoginRequired), reattaches a restarted agent to the same
session (``session/load``), relays the session calls (prompt, cancel, mode, option,
authenticate) and stops the process. It decides nothing: the session core does, and the
HostSession shell turns what happens here into core events.

Calling contract: ``await start()`` once, then ``await open()`` (or ``authenticate`` and
``open`` again after a login); ``exited`` resolves with the exit code of the current
process; ``await restart()`` replaces a dead process and loads the session; ``await stop()``
once at the end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import acp
from acp import RequestError, schema

import tether
from tether.errors import TetherError
from tether.host import agent_process
from tether.host.agent_process import AgentSpec
from tether.protocol.attachments import FILE, IMAGE, Attachment

T = TypeVar("T")
AUTH_REQUIRED = -32000  # ACP: the agent needs authenticate before session/new
CAPABILITIES = schema.ClientCapabilities(
    fs=schema.FileSystemCapabilities(read_text_file=True, write_text_file=True),
    terminal=True,
)


PROGRESS_EVERY = 10.0  # seconds between "still starting" lines while an agent starts


def starting_line(spec: AgentSpec) -> str:
    """What the terminal says while the agent starts (npx may spend a while downloading it)."""
    title = spec.preset.title if spec.preset is not None and spec.preset.title else spec.name
    fetched = "; npx may download it on first use" if spec.argv[:1] == ("npx",) else ""
    return f"Starting {title}{fetched}…"


async def with_progress(work: Awaitable[T], say: Callable[[str], None], line: str, every: float = PROGRESS_EVERY) -> T:
    """Await ``work``, saying ``line`` first and how long it has taken every ``every`` seconds."""
    say(line)
    task = asyncio.ensure_future(work)
    waited = 0.0
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=every)
            if not task.done():
                waited += every
                say(f"… still starting ({waited:.0f} s)")
    finally:
        if not task.done():
            task.cancel()
    return task.result()


class LoginRequired(TetherError):
    """session/new answered ACP's auth-required error: the agent needs a login first."""


class AgentConnection:
    """See module doc."""

    def __init__(self, spec: AgentSpec, root: Path, log_path: Path, client: Any) -> None:
        self.spec = spec
        self.root = root
        self.log_path = log_path
        self.client = client
        self.process: asyncio.subprocess.Process | None = None
        self.conn: acp.core.ClientSideConnection | None = None
        self.session_id = ""
        self.can_load = False
        self.accepts: frozenset[str] = frozenset()  # what may go with a prompt (protocol/attachments.py)
        self.auth_methods: tuple[Any, ...] = ()

    async def start(self) -> None:
        """Start the process and run ACP ``initialize``."""
        spec = self.spec
        if spec.preset is not None and spec.preset.env:
            # The preset's fixed variables (how the agent is made to ask) win over the user's own.
            spec = dataclasses.replace(spec, settings=(*spec.settings, *spec.preset.env))
        self.process = await agent_process.spawn(spec, self.root, self.log_path)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.conn = acp.connect_to_agent(self.client, self.process.stdin, self.process.stdout)
        init = await self.conn.initialize(
            protocol_version=acp.PROTOCOL_VERSION,
            client_capabilities=CAPABILITIES,
            client_info=schema.Implementation(name="tether", version=tether.__version__),
        )
        capabilities = init.agent_capabilities
        self.can_load = bool(capabilities and capabilities.load_session)
        prompts = capabilities.prompt_capabilities if capabilities else None
        self.accepts = frozenset(
            kind for kind, offered in ((IMAGE, prompts and prompts.image), (FILE, prompts and prompts.embedded_context))
            if offered
        )  # fmt: skip
        self.auth_methods = tuple(init.auth_methods or ())

    async def wait_exit(self) -> int:
        """The exit code of the current process, once it exits."""
        assert self.process is not None
        return await self.process.wait()

    async def open(self) -> schema.NewSessionResponse:
        """``session/new`` in the project; LoginRequired if the agent needs a login."""
        assert self.conn is not None
        try:
            new = await self.conn.new_session(cwd=str(self.root), mcp_servers=[])
        except RequestError as exc:
            if exc.code == AUTH_REQUIRED:
                raise LoginRequired(str(exc)) from None
            raise
        self.session_id = new.session_id
        return new

    async def authenticate(self, method_id: str) -> None:
        assert self.conn is not None
        await self.conn.authenticate(method_id=method_id)

    async def restart(self) -> schema.LoadSessionResponse | None:
        """A new process for the same session (``session/load``); the old one must be gone."""
        await self.stop()
        await self.start()
        assert self.conn is not None
        return await self.conn.load_session(cwd=str(self.root), session_id=self.session_id, mcp_servers=[])

    async def prompt(self, text: str, attachments: tuple[Attachment, ...] = ()) -> str:
        """One turn; its stop reason. Attachments go as image blocks or embedded resources (ACP content)."""
        assert self.conn is not None
        blocks: list[Any] = [acp.text_block(text)] if text else []
        for attachment in attachments:
            data = base64.b64encode(attachment.data).decode()
            uri = f"attachment:///{quote(attachment.name)}"
            if attachment.kind == IMAGE:
                blocks.append(acp.image_block(data, attachment.mime, uri=uri))
                continue
            try:
                resource: Any = schema.TextResourceContents(uri=uri, mime_type=attachment.mime,
                                                            text=attachment.data.decode("utf-8"))  # fmt: skip
            except UnicodeDecodeError:
                resource = schema.BlobResourceContents(uri=uri, mime_type=attachment.mime, blob=data)
            blocks.append(acp.resource_block(resource))
        response = await self.conn.prompt(session_id=self.session_id, prompt=blocks)
        return str(response.stop_reason)

    async def cancel(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await self.conn.cancel(session_id=self.session_id)

    async def set_mode(self, mode_id: str) -> None:
        assert self.conn is not None
        await self.conn.set_session_mode(session_id=self.session_id, mode_id=mode_id)

    async def set_option(self, option_id: str, value: str | bool) -> Any:
        """The agent's config options after the change (None if it did not say)."""
        assert self.conn is not None
        response = await self.conn.set_config_option(config_id=option_id, session_id=self.session_id, value=value)
        return response.config_options if response else None

    async def stop(self) -> None:
        """End the process: close stdin (ACP agents exit then), then SIGTERM, then SIGKILL."""
        process = self.process
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    await asyncio.wait_for(process.wait(), timeout=1.0)
                    break
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, sig)
            await process.wait()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()
