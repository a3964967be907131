"""The host as ACP client (the "editor" role): answers the agent's requests.

Every request the agent makes of the machine lands here: ``fs/*`` goes through the
project boundary (ProjectFiles), ``terminal/*`` through Terminals, permission requests
and session updates to the session's Gate. A write or a command runs only once the Gate
permits it (the session core checks that an approval covers it, or asks itself).
Internal errors are turned into ACP errors at this edge so the agent gets a readable
reason and the host keeps running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from acp import RequestError, schema

from tether.errors import TetherError
from tether.host.core.approvals import Option
from tether.host.files import ProjectFiles
from tether.host.terminals import Terminal, Terminals


class Gate(Protocol):
    """What the client needs of the session: every request that matters goes through it."""

    def update(self, update: Any) -> None: ...

    async def permission(self, tool_call: schema.ToolCallUpdate, options: tuple[Option, ...]) -> str | None: ...

    async def permit_write(self, path: str, shown: str) -> tuple[bool, str]: ...

    async def permit_command(self, argv: list[str], cwd: str, env: dict[str, str]) -> tuple[bool, str]: ...

    def command_environment(self) -> dict[str, str]: ...

    def terminal_started(self, terminal: Terminal) -> None: ...


def _refused(path: str, exc: Exception) -> RequestError:
    detail = getattr(exc, "strerror", None) or str(exc)
    return RequestError.invalid_params({"message": f"{path}: {detail}"})


class HostClient:
    """ACP Client implementation bound to one session's Gate (see module doc)."""

    def __init__(self, gate: Gate, files: ProjectFiles, terminals: Terminals) -> None:
        self.gate = gate
        self.files = files
        self.terminals = terminals

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        # Synchronous body: the SDK runs each notification as its own task, in arrival
        # order, so not awaiting before the transcript is updated keeps chunks in order.
        self.gate.update(update)

    async def request_permission(
        self, session_id: str, tool_call: schema.ToolCallUpdate, options: list[schema.PermissionOption], **kwargs: Any
    ) -> schema.RequestPermissionResponse:
        offered = tuple(Option(o.option_id, o.name, o.kind) for o in options)
        chosen = await self.gate.permission(tool_call, offered)
        if chosen is not None:
            return schema.RequestPermissionResponse(outcome=schema.AllowedOutcome(option_id=chosen, outcome="selected"))
        return schema.RequestPermissionResponse(outcome=schema.DeniedOutcome(outcome="cancelled"))

    async def read_text_file(
        self, session_id: str, path: str, line: int | None = None, limit: int | None = None, **kwargs: Any
    ) -> schema.ReadTextFileResponse:
        try:
            return schema.ReadTextFileResponse(content=self.files.read(path, line, limit))
        except FileNotFoundError:
            # As Zed, the reference client, does: a missing file inside the project reads as
            # empty. Agents rely on it to create files (Gemini CLI's existence check fails the
            # write on an ACP error). docs/agents.md lists each such choice.
            return schema.ReadTextFileResponse(content="")
        except (TetherError, OSError) as exc:
            raise _refused(path, exc) from None

    async def write_text_file(
        self, session_id: str, path: str, content: str, **kwargs: Any
    ) -> schema.WriteTextFileResponse | None:
        try:
            target = self.files.resolve(path)
        except TetherError as exc:
            raise _refused(path, exc) from None
        allowed, reason = await self.gate.permit_write(str(target), path)
        if not allowed:
            raise RequestError.invalid_params({"message": f"{path} was not written: {reason}"})
        try:
            self.files.write(path, content)
        except (TetherError, OSError) as exc:
            raise _refused(path, exc) from None
        return schema.WriteTextFileResponse()

    async def create_terminal(
        self,
        session_id: str,
        command: str,
        args: list[str] | None = None,
        env: list[schema.EnvVariable] | None = None,
        cwd: str | None = None,
        output_byte_limit: int | None = None,
        **kwargs: Any,
    ) -> schema.CreateTerminalResponse:
        try:
            folder = self.files.resolve(cwd) if cwd else self.files.root
        except TetherError as exc:
            raise _refused(cwd or ".", exc) from None
        argv = [command, *args] if args else ["/bin/sh", "-c", command]
        added = {v.name: v.value for v in env or []}
        allowed, reason = await self.gate.permit_command(argv, str(folder), added)
        if not allowed:
            raise RequestError.invalid_params({"message": f"{command!r} was not run: {reason}"})
        environment = self.gate.command_environment() | added
        try:
            terminal = await self.terminals.create(command, args, environment, Path(folder), output_byte_limit)
        except OSError as exc:
            raise RequestError.invalid_params({"message": f"cannot run {command!r}: {exc.strerror}"}) from None
        self.gate.terminal_started(terminal)
        return schema.CreateTerminalResponse(terminal_id=terminal.id)

    def _terminal(self, terminal_id: str) -> Any:
        terminal = self.terminals.find(terminal_id)
        if terminal is None:
            raise RequestError.invalid_params({"message": f"unknown terminal {terminal_id}"})
        return terminal

    async def terminal_output(self, session_id: str, terminal_id: str, **kwargs: Any) -> schema.TerminalOutputResponse:
        terminal = self._terminal(terminal_id)
        status = None
        if terminal.done.is_set():
            status = schema.TerminalExitStatus(exit_code=terminal.exit_code, signal=terminal.signal)
        return schema.TerminalOutputResponse(output=terminal.text(), truncated=terminal.truncated, exit_status=status)

    async def wait_for_terminal_exit(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> schema.WaitForTerminalExitResponse:
        self._terminal(terminal_id)
        terminal = await self.terminals.wait(terminal_id)
        return schema.WaitForTerminalExitResponse(exit_code=terminal.exit_code, signal=terminal.signal)

    async def kill_terminal(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> schema.KillTerminalResponse | None:
        self._terminal(terminal_id)
        self.terminals.kill(terminal_id)
        return schema.KillTerminalResponse()

    async def release_terminal(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> schema.ReleaseTerminalResponse | None:
        self.terminals.release(terminal_id)
        return schema.ReleaseTerminalResponse()

    async def create_elicitation(self, message: str, mode: Any, **kwargs: Any) -> schema.CreateElicitationResponse:
        # Not advertised in CAPABILITIES; an agent that asks anyway gets a clear error.
        raise RequestError.method_not_found("elicitation/create")

    async def complete_elicitation(self, elicitation_id: str, **kwargs: Any) -> None:
        return None

    def on_connect(self, conn: Any) -> None:
        return None

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise RequestError.method_not_found(method)

    async def ext_notification(self, method: str, params: dict[str, Any]) -> None:
        return None
