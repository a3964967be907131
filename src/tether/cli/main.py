"""The ``tether`` command line (Typer). Commands only parse and report; work is elsewhere.

User-facing errors (UserError) print their message and advice, without a traceback,
and exit with status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn

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
config_app = typer.Typer(help="Read and change settings (config.toml in the config folder).", no_args_is_help=True)
app.add_typer(config_app, name="config")

err = Console(stderr=True)

AgentOption = Annotated[
    str | None,
    typer.Option("--agent", help='demo, or the command line of any ACP agent, e.g. "python3 my_agent.py".'),
]
RelayOption = Annotated[
    str | None, typer.Option("--relay", help="Relay URL; default: a relay inside this process on 127.0.0.1.")
]
SandboxOption = Annotated[
    bool | None, typer.Option("--sandbox/--no-sandbox", help="Confine tools to the project (default: config).")
]
SkipOption = Annotated[
    bool,
    typer.Option(
        "--dangerously-skip-permissions",
        help="Approve every tool call without asking (refused whenever Remote Control is on).",
    ),
]


def _agent_settings(config: Any) -> tuple[tuple[str, str], ...]:
    """TETHER_AGENT_* from the config file, where the environment does not set them already."""
    settings = []
    for key, variable in (("agent.provider", "TETHER_AGENT_PROVIDER"), ("agent.model", "TETHER_AGENT_MODEL")):
        value = config.get(key)
        if value and not os.environ.get(variable):
            settings.append((variable, value))
    return tuple(settings)


def _options(
    agent: str | None,
    relay: str | None,
    sandbox: bool | None,
    skip_permissions: bool,
    remote: bool,
    as_json: bool = False,
    name: str | None = None,
) -> Any:
    """RunOptions from the flags, falling back to the config file for what is not given."""
    from tether.config import Config
    from tether.host.app import RunOptions

    try:
        config = Config()
        return RunOptions(
            root=Path.cwd(),
            agent=agent or config.get("agent.default"),
            relay=relay or config.get("relay.url"),
            sandbox=config.get("sandbox.default") if sandbox is None else sandbox,
            skip_permissions=skip_permissions,
            remote=remote or config.get("remote.auto_start"),
            as_json=as_json,
            name=name,
            approval_timeout=float(config.get("approvals.timeout_seconds")),
            agent_settings=_agent_settings(config),
            embedded_relay=_embedded_relay,
        )
    except UserError as exc:
        _fail(exc)


@contextlib.asynccontextmanager
async def _embedded_relay() -> AsyncIterator[str]:
    """A relay inside this process on 127.0.0.1 (the default when no relay is given)."""
    from tether.relay.server import EmbeddedRelay, RelayConfig

    async with EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0)) as relay:
        yield relay.url


def _run(main: Callable[[], Coroutine[Any, Any, int]]) -> None:
    try:
        code = asyncio.run(main())
    except UserError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def interactive(
    ctx: typer.Context,
    remote: Annotated[bool, typer.Option("--remote", help="Start with Remote Control on.")] = False,
    agent: AgentOption = None,
    relay: RelayOption = None,
    sandbox: SandboxOption = None,
    skip_permissions: SkipOption = False,
) -> None:
    """Interactive session in the current folder; /remote turns Remote Control on or off."""
    if ctx.invoked_subcommand is not None:
        return
    from tether.host.app import run_interactive

    _run(lambda: run_interactive(_options(agent, relay, sandbox, skip_permissions, remote=remote)))


@app.command()
def rc(
    name: Annotated[str | None, typer.Option("--name", help="A name for this session.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print one JSON line {"url", "session_id"}.')] = False,
    agent: AgentOption = None,
    relay: RelayOption = None,
    sandbox: SandboxOption = None,
    skip_permissions: SkipOption = False,
) -> None:
    """Server mode: a headless remote-controlled session; prints the URL and a QR code."""
    from tether.host.app import run_rc

    _run(lambda: run_rc(_options(agent, relay, sandbox, skip_permissions, remote=True, as_json=as_json, name=name)))


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
        _fail(exc)


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


def _fail(exc: UserError) -> NoReturn:
    err.print(f"[bold red]Error:[/bold red] {exc}", highlight=False)
    if advice := exc.advice():
        err.print(advice, highlight=False)
    raise typer.Exit(2)


@config_app.command("get")
def config_get(key: Annotated[str, typer.Argument(help="A key such as agent.default.")]) -> None:
    """Print the value of one key."""
    from tether.config import Config

    try:
        value = Config().get(key)
    except UserError as exc:
        _fail(exc)
    print("" if value is None else str(value).lower() if isinstance(value, bool) else value)


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="A key such as agent.default.")],
    value: Annotated[str, typer.Argument(help="The new value.")],
) -> None:
    """Change one key."""
    from tether.config import Config

    try:
        Config().set(key, value)
    except UserError as exc:
        _fail(exc)
    print(f"{key} = {value}")


@config_app.command("list")
def config_list() -> None:
    """Every key, its value and what it does."""
    from tether.config import Config

    try:
        items = Config().items()
    except UserError as exc:
        _fail(exc)
    for key, value in items:
        shown = "(not set)" if value is None else str(value).lower() if isinstance(value, bool) else value
        print(f"{key.name} = {shown}    # {key.help}")


@app.command()
def doctor() -> None:
    """What is installed and what works: agents, relay, sandbox, trust."""
    from rich.table import Table

    from tether.host.doctor import run_checks

    try:
        checks = run_checks(Path.cwd())
    except UserError as exc:
        _fail(exc)
    table = Table("", "what", "status", "detail", box=None, pad_edge=False)
    colors = {"ok": "green", "setup": "yellow", "missing": "red", "unavailable": "dim"}
    for check in checks:
        color = colors.get(check.status, "")
        table.add_row(check.area, check.name, f"[{color}]{check.status}[/{color}]", check.detail)
    Console().print(table)


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
    err.print(f"tether relay starting on http://{host}:{port} (Ctrl-C stops it)", highlight=False)

    async def main() -> int:
        await serve(config)
        return 0

    _run(main)


def _log_to_file() -> None:
    """Library warnings (ACP SDK, uvicorn) go to logs/tether.log, not over the conversation."""
    from tether.paths import logs_dir

    try:
        logs_dir().mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(logs_dir() / "tether.log", encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


def main() -> None:
    """Console-script entry point."""
    _log_to_file()
    app(prog_name="tether")


if __name__ == "__main__":
    main()
