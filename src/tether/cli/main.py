"""The ``tether`` command line (Typer). Commands only parse and report; work is elsewhere.

User-facing errors (UserError) print their message and advice, without a traceback,
and exit with status 2.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tether.errors import UserError

app = typer.Typer(
    name="tether",
    help="Drive a coding agent on this machine from your phone, end to end.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
relay_app = typer.Typer(help="Run a relay that pairs hosts and viewers.", no_args_is_help=True)
app.add_typer(relay_app, name="relay")

err = Console(stderr=True)

AgentOption = Annotated[
    str | None,
    typer.Option("--agent", help='demo, or the command line of any ACP agent, e.g. "python3 my_agent.py".'),
]
RelayOption = Annotated[
    str | None, typer.Option("--relay", help="Relay URL; default: a relay inside this process on 127.0.0.1.")
]
SandboxOption = Annotated[bool, typer.Option("--sandbox/--no-sandbox", help="Confine tools to the project.")]
SkipOption = Annotated[
    bool,
    typer.Option(
        "--dangerously-skip-permissions",
        help="Approve every tool call without asking (refused whenever Remote Control is on).",
    ),
]


def _run(main: Callable[[], Coroutine[Any, Any, int]]) -> None:
    try:
        code = asyncio.run(main())
    except UserError as exc:
        err.print(f"[bold red]Error:[/bold red] {exc}", highlight=False)
        if advice := exc.advice():
            err.print(advice, highlight=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def interactive(
    ctx: typer.Context,
    remote: Annotated[bool, typer.Option("--remote", help="Start with Remote Control on.")] = False,
    agent: AgentOption = None,
    relay: RelayOption = None,
    sandbox: SandboxOption = False,
    skip_permissions: SkipOption = False,
) -> None:
    """Interactive session in the current folder; /remote turns Remote Control on or off."""
    if ctx.invoked_subcommand is not None:
        return
    from tether.host.app import RunOptions, run_interactive

    options = RunOptions(
        root=Path.cwd(), agent=agent, relay=relay, sandbox=sandbox, skip_permissions=skip_permissions, remote=remote
    )
    _run(lambda: run_interactive(options))


@app.command()
def rc(
    name: Annotated[str | None, typer.Option("--name", help="A name for this session.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print one JSON line {"url", "session_id"}.')] = False,
    agent: AgentOption = None,
    relay: RelayOption = None,
    sandbox: SandboxOption = False,
    skip_permissions: SkipOption = False,
) -> None:
    """Server mode: a headless remote-controlled session; prints the URL and a QR code."""
    from tether.host.app import RunOptions, run_rc

    options = RunOptions(
        root=Path.cwd(),
        agent=agent,
        relay=relay,
        sandbox=sandbox,
        skip_permissions=skip_permissions,
        remote=True,
        as_json=as_json,
        name=name,
    )
    _run(lambda: run_rc(options))


@app.command()
def trust(
    folder: Annotated[Path | None, typer.Argument(help="Folder to trust (default: the current one).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List trusted folders.")] = False,
) -> None:
    """Trust a folder, so Remote Control may run the agent in it."""
    from tether.host.trust import TrustStore

    store = TrustStore()
    try:
        if list_:
            for trusted in store.folders():
                print(trusted)
            return
        print(f"Trusted {store.trust(folder or Path.cwd())}")
    except UserError as exc:
        err.print(f"[bold red]Error:[/bold red] {exc}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def untrust(
    folder: Annotated[Path | None, typer.Argument(help="Folder to forget (default: the current one).")] = None,
) -> None:
    """Forget a trusted folder."""
    from tether.host.trust import TrustStore

    target = (folder or Path.cwd()).resolve()
    if TrustStore().untrust(target):
        print(f"Untrusted {target}")
    else:
        err.print(f"{target} was not in the trusted list.")
        raise typer.Exit(1)


@relay_app.command("serve")
def relay_serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8787,
    public_url: Annotated[
        str | None, typer.Option("--public-url", help="URL browsers use to reach this relay (behind TLS).")
    ] = None,
    broker: Annotated[str, typer.Option(help="Where routing lives: memory (one process).")] = "memory",
) -> None:
    """Run a standalone relay until stopped."""
    from tether.relay.server import RelayConfig, serve

    config = RelayConfig(host=host, port=port, public_url=public_url, broker=broker)
    err.print(f"tether relay listening on http://{host}:{port}", highlight=False)

    async def main() -> int:
        await serve(config)
        return 0

    _run(main)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="tether")


if __name__ == "__main__":
    main()
