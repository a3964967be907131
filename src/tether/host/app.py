"""Composition root: wires a HostSession, the terminal and Remote Control together.

``run_interactive`` is ``tether``; ``run_rc`` is ``tether rc``. Both end the session at
once on Ctrl-C, SIGTERM or SIGHUP (closing the terminal): the viewer is told, the relay
drops the session, the agent and its commands are stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console as RichConsole

from tether.errors import PermissionsSkipped, UserError
from tether.host import agent_connection, agent_process, sandbox_run, tls
from tether.host import trust as workspace
from tether.host.console import Console, read_lines
from tether.host.permissions import Policy, RuleError, policy_from
from tether.host.remote import RelayFactory, Remote, check_allowed
from tether.host.session import APPROVAL_TIMEOUT, HostSession
from tether.paths import logs_dir

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
OUTAGE_STATUS = 3  # `tether rc` exit status: the relay link stayed away longer than remote.outage_window
DEMO_BANNER = (
    "No agent configured and no model API key found: using the DEMO agent (no model behind it). "
    "For tether's own agent set ANTHROPIC_API_KEY, or OPENAI_API_KEY / OPENAI_BASE_URL (Ollama, vLLM, ...); "
    'for another agent use --agent claude|codex|gemini|opencode|goose or --agent "ANY ACP COMMAND".'
)


@dataclass(frozen=True)
class RunOptions:
    """What the CLI collected for a session."""

    root: Path
    agent: str | None = None
    relay: str | None = None
    sandbox: bool = False
    skip_permissions: bool = False
    remote: bool = False
    auto_start: bool = False  # remote.auto_start: Remote Control on from the start, in a trusted folder
    as_json: bool = False
    name: str | None = None
    approval_timeout: float = APPROVAL_TIMEOUT
    agent_settings: tuple[tuple[str, str], ...] = ()  # TETHER_AGENT_* for the built-in agent
    embedded_relay: RelayFactory | None = None  # a relay in this process, when no --relay is given
    tunnel: str | None = None  # publish the embedded relay through cloudflared or tailscale (host/tunnel.py)
    relay_ca: Path | None = None  # the private CA the relay's certificate chains to (host/tls.py)
    accept_device: bool = False  # admit browsers without asking at the terminal (host/pairing.py)


def _log_path(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return logs_dir() / f"agent-{name}-{stamp}-{os.getpid()}.log"


def _refuse_skipped(options: RunOptions, rc: bool = False) -> None:
    """--dangerously-skip-permissions with Remote Control on (however it is turned on) stops here, exit status 2."""
    if not options.skip_permissions:
        return
    how = "tether rc" if rc else "--remote" if options.remote else "remote.auto_start" if options.auto_start else None
    if how is not None:
        raise PermissionsSkipped(
            f"--dangerously-skip-permissions cannot be used with Remote Control ({how} turns it on): "
            "every edit and command must be approved by a person."
        )


class _Input:
    """The terminal's lines, read by a thread started only once something needs them.

    A refusal before that (an untrusted folder under `tether rc`, an agent that cannot
    start) then leaves no thread reading stdin behind a closed event loop.
    """

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.started = False

    def start(self) -> None:
        if not self.started and sys.stdin is not None and not sys.stdin.closed:
            read_lines(asyncio.get_running_loop(), self.lines)
            self.started = True


async def _settle_trust(root: Path, out: RichConsole, typed: _Input, stop: asyncio.Event) -> bool | None:
    """Whether the folder is trusted, asking at the terminal first if it is not; None if stopped while asking.

    Asked before the agent starts, so nothing of the folder is read or run before the answer.
    Only a terminal is asked: with stdin not a terminal the folder simply stays untrusted.
    """
    store = workspace.TrustStore()
    if store.is_trusted(root):
        return True
    if sys.stdin is None or sys.stdin.closed or not sys.stdin.isatty():
        return False
    out.print(workspace.question(root), end="", markup=False, highlight=False, soft_wrap=True)
    typed.start()
    answer = asyncio.ensure_future(typed.lines.get())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({answer, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not answer.done():
        answer.cancel()
        return None
    line = answer.result()
    if line is not None and line.strip().lower() in ("y", "yes"):
        out.print(f"Trusted {store.trust(root)}.", highlight=False)
        return True
    out.print(f"Not trusted: Remote Control stays off here (`tether trust {root}` changes that).",
              highlight=False, soft_wrap=True)  # fmt: skip
    return False


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)


def _permission_policy(root: Path, trusted: bool, sandboxed: bool = False) -> Policy:
    """The user's permission rules, and the project's (tighten-only) once the folder is trusted."""
    import tomllib

    from tether.config import Config, ConfigError
    from tether.paths import config_dir, state_dir

    project_file = root / ".tether" / "config.toml"
    config = Config()
    try:
        project = tomllib.loads(project_file.read_text(encoding="utf-8")) if trusted and project_file.is_file() else {}
        protected = [str(p.resolve()) for p in (config_dir(), state_dir())]
        confined = sandboxed and bool(config.get("sandbox.auto_approve"))
        return policy_from(config.table("permissions"), project.get("permissions"), str(root.resolve()), protected,
                           str(config.path), str(project_file), confined)  # fmt: skip
    except (tomllib.TOMLDecodeError, RuleError, OSError) as exc:
        raise ConfigError(f"the permission rules cannot be read: {exc}") from None


async def _open_session(
    options: RunOptions, out: RichConsole, trusted: bool = False
) -> tuple[HostSession, Console]:
    """The session with the terminal attached from the start (it sees the login, the modes)."""
    tls.use_relay_ca(options.relay_ca)  # every connection to the relay in this run verifies against it
    spec = agent_process.resolve(agent_process.default_agent(options.agent))
    if spec.name == "builtin" and options.agent_settings:
        spec = dataclasses.replace(spec, settings=options.agent_settings)
    if options.sandbox:
        spec = dataclasses.replace(spec, sandbox=sandbox_run.Sandbox(options.root))
    if options.agent is None and spec.name == agent_process.DEMO:
        out.print(f"[yellow]{DEMO_BANNER}[/yellow]", highlight=False)
    session = HostSession(
        options.root, spec, _log_path(spec.name), options.approval_timeout, skip_permissions=options.skip_permissions
    )
    session.core.permission_policy = rules = _permission_policy(options.root, trusted, options.sandbox)
    from tether.config import Config

    session.core.controls.chosen_mode = Config().get("agent.mode")  # else it starts where it asks (issue 11)
    session.core.controls.sandboxed = options.sandbox  # commands it runs itself are confined (issue 14 guard)
    for warning in rules.warnings:
        out.print(f"[yellow]{warning}[/yellow]", highlight=False, soft_wrap=True)
    if options.name:
        session.core.info["title"] = options.name
    console = Console(session.handle, session.root, out)
    session.sinks.append(console)
    # Saying what is happening, not a blank terminal, while npx may fetch the agent (issue 14).
    say = lambda text: out.print(text, style="dim", highlight=False, markup=False)  # noqa: E731
    await agent_connection.with_progress(session.start(), say, agent_connection.starting_line(spec))
    return session, console


async def run_rc(options: RunOptions) -> int:
    """``tether rc``: a headless session under Remote Control until stopped."""
    if options.sandbox:
        sandbox_run.check()  # refused, saying why, before anything starts
    _refuse_skipped(options, rc=True)
    out = RichConsole(stderr=options.as_json)
    stop = asyncio.Event()
    _install_stop(stop)
    typed = _Input()
    if await _settle_trust(options.root, out, typed, stop) is None:
        return 130
    check_allowed(options.root, options.skip_permissions)
    session, console = await _open_session(options, out, trusted=True)
    remote = Remote(
        session, options.relay, out, as_json=options.as_json, embedded=options.embedded_relay, tunnel=options.tunnel,
        console=console, accept_device=options.accept_device,
    )  # fmt: skip
    try:
        link = await remote.start(options.skip_permissions)
    except BaseException:
        await session.close("Remote Control could not start")
        raise
    typed.start()
    lines = typed.lines

    async def answer_from_terminal() -> None:
        # tether rc has no prompt line; the terminal still answers approvals.
        while (line := await lines.get()) is not None:
            await console.handle(line, toggle_remote=None)

    stopped = asyncio.ensure_future(stop.wait())
    answers = asyncio.ensure_future(answer_from_terminal())
    ends: list[asyncio.Future[Any]] = [stopped, session.ended, link.lost, remote.ended]
    await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if remote.ended.done() and not session.ended.done():
        out.print(f"[red]Remote Control ended:[/red] {remote.ended.result()}")
        code = 1
    elif link.lost.done() and not session.ended.done():
        out.print(f"[red]Remote Control lost:[/red] {link.lost.result()}")
        code = OUTAGE_STATUS if link.outage_ended else 1
    reason = "the host stopped" if stop.is_set() else "the session ended"
    answers.cancel()
    stopped.cancel()
    await session.close(reason)
    await remote.stop(reason)
    return code


async def run_interactive(options: RunOptions) -> int:
    """``tether``: a local chat in the terminal; /remote turns Remote Control on and off."""
    if options.sandbox:
        sandbox_run.check()  # refused, saying why, before anything starts
    _refuse_skipped(options)
    out = RichConsole()
    stop = asyncio.Event()
    _install_stop(stop)
    typed = _Input()
    trusted = await _settle_trust(options.root, out, typed, stop)
    if trusted is None:
        return 130
    if options.remote:
        check_allowed(options.root, options.skip_permissions)
    session, console = await _open_session(options, out, trusted=trusted)
    remote = Remote(session, options.relay, out, embedded=options.embedded_relay, tunnel=options.tunnel,
                    console=console, accept_device=options.accept_device)  # fmt: skip
    out.print(f"[bold]tether[/bold] · agent [cyan]{session.spec.name}[/cyan] · {session.root}")
    out.print("[dim]Type a prompt and press Enter. /help for commands.[/dim]")

    async def toggle_remote() -> None:
        if remote.active:
            await remote.stop()
            out.print("Remote Control is off.")
            return
        try:
            await remote.start(options.skip_permissions)
        except UserError as exc:
            out.print(f"[red]{exc}[/red]", highlight=False)

    if options.remote or (options.auto_start and trusted):
        await remote.start(options.skip_permissions)
    elif options.auto_start:
        out.print("[yellow]remote.auto_start: Remote Control stays off, this folder is not trusted.[/yellow]")
    typed.start()
    lines = typed.lines

    async def read_input() -> None:
        while (line := await lines.get()) is not None:
            if not await console.handle(line, toggle_remote):
                return

    stopped = asyncio.ensure_future(stop.wait())
    reader = asyncio.ensure_future(read_input())
    while True:
        waitables: list[asyncio.Future[Any]] = [stopped, reader, session.ended]
        if remote.link is not None:
            waitables.append(remote.link.lost)
        await asyncio.wait(waitables, return_when=asyncio.FIRST_COMPLETED)
        link = remote.link
        if link is not None and link.lost.done() and not (stopped.done() or reader.done() or session.ended.done()):
            out.print(f"[red]Remote Control lost:[/red] {link.lost.result()}")
            if link.outage_ended:
                out.print("The local session goes on; /remote starts a new remote session.")
            await remote.stop()
            continue
        break
    reason = "the host stopped" if stop.is_set() or reader.done() else "the session ended"
    for task in (stopped, reader):
        task.cancel()
    with contextlib.suppress(Exception):
        await session.close(reason)
    await remote.stop(reason)
    return 0
