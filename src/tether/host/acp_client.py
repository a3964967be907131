"""The host as ACP client (the "editor" role): answers the agent's requests.

Every request the agent makes of the machine lands here: ``fs/*`` goes through the
project boundary (ProjectFiles), ``terminal/*`` through Terminals, permission requests
and session updates to the session. Internal errors are turned into ACP errors at this
edge so the agent gets a readable reason and the host keeps running.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from acp import RequestError, schema

from tether.errors import OutsideProject
from tether.host.agent_process import agent_environment
from tether.host.files import ProjectFiles
from tether.host.terminals import Terminals

if TYPE_CHECKING:
    from tether.host.session import HostSession

CAPABILITIES = schema.ClientCapabilities(
    fs=schema.FileSystemCapabilities(read_text_file=True, write_text_file=True),
    terminal=True,
)


def _outside(exc: OutsideProject) -> RequestError:
    return RequestError.invalid_params({"message": str(exc)})


class HostClient:
    """ACP Client implementation bound to one HostSession (see module doc)."""

    def __init__(self, session: HostSession, files: ProjectFiles, terminals: Terminals) -> None:
        self.session = session
        self.files = files
        self.terminals = terminals

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        # Synchronous body: the SDK runs each notification as its own task, in arrival
        # order, so not awaiting before the transcript is updated keeps chunks in order.
        self.session.on_update(update)

    async def request_permission(
        self, session_id: str, tool_call: schema.ToolCallUpdate, options: list[schema.PermissionOption], **kwargs: Any
    ) -> schema.RequestPermissionResponse:
        return await self.session.ask_permission(tool_call, options)

    async def read_text_file(
        self, session_id: str, path: str, line: int | None = None, limit: int | None = None, **kwargs: Any
    ) -> schema.ReadTextFileResponse:
        try:
            return schema.ReadTextFileResponse(content=self.files.read(path, line, limit))
        except OutsideProject as exc:
            raise _outside(exc) from None
        except FileNotFoundError:
            raise RequestError.resource_not_found(path) from None
        except (IsADirectoryError, PermissionError) as exc:
            raise RequestError.invalid_params({"message": f"{path}: {exc.strerror}"}) from None

    async def write_text_file(
        self, session_id: str, path: str, content: str, **kwargs: Any
    ) -> schema.WriteTextFileResponse | None:
        try:
            self.files.write(path, content)
        except OutsideProject as exc:
            raise _outside(exc) from None
        except (IsADirectoryError, PermissionError, NotADirectoryError) as exc:
            raise RequestError.invalid_params({"message": f"{path}: {exc.strerror}"}) from None
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
        except OutsideProject as exc:
            raise _outside(exc) from None
        environment = agent_environment(self.session.agent.env_prefixes) | {v.name: v.value for v in env or []}
        try:
            terminal = await self.terminals.create(command, args, environment, Path(folder), output_byte_limit)
        except OSError as exc:
            raise RequestError.invalid_params({"message": f"cannot run {command!r}: {exc.strerror}"}) from None
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
