"""The ``tether`` command line (Typer). Commands only parse and report; work is elsewhere.

User-facing errors (UserError) print their message and advice, without a traceback,
and exit with status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from tether.cli import accounts, devices
from tether.errors import UserError
from tether.relay.config import HANDSHAKE_TIMEOUT, SESSIONS_PER_ADDRESS, SLOW_TIMEOUT, TOTAL_QUEUE_BYTES

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
RelayCaOption = Annotated[
    Path | None,
    typer.Option("--relay-ca", help="PEM file of the private CA the relay's certificate chains to (default: config)."),
]
TunnelOption = Annotated[
    str | None,
    typer.Option(
        "--tunnel",
        help="cloudflared or tailscale: publish the built-in relay through that tool, for phones (default: config).",
    ),
]
SandboxOption = Annotated[
    bool | None, typer.Option("--sandbox/--no-sandbox", help="Confine tools to the project (default: config).")
]
AcceptOption = Annotated[
    bool,
    typer.Option(
        "--accept-device",
        help="Admit any browser that opens the session URL without asking at the terminal (unattended use).",
    ),
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
    tunnel: str | None = None,
    relay_ca: Path | None = None,
    accept_device: bool = False,
) -> Any:
    """RunOptions from the flags, falling back to the config file for what is not given."""
    from tether.config import Config
    from tether.host.app import RunOptions
    from tether.host.tls import check_relay_url
    from tether.host.tunnel import choose_relay

    try:
        config = Config()
        relay, tunnel = choose_relay(relay, tunnel, config.get("relay.url"), config.get("remote.tunnel"))
        if relay is not None:
            check_relay_url(relay)  # refused before the agent starts (host/tls.py)
        configured_ca = config.get("relay.ca")
        relay_ca = relay_ca or (Path(configured_ca).expanduser() if configured_ca else None)
        return RunOptions(
            root=Path.cwd(),
            agent=agent or config.get("agent.default"),
            relay=relay,
            tunnel=tunnel,
            sandbox=config.get("sandbox.default") if sandbox is None else sandbox,
            skip_permissions=skip_permissions,
            remote=remote,
            auto_start=bool(config.get("remote.auto_start")),
            as_json=as_json,
            name=name,
            approval_timeout=float(config.get("approvals.timeout_seconds")),
            agent_settings=_agent_settings(config),
            embedded_relay=_embedded_relay,
            relay_ca=relay_ca,
            accept_device=accept_device,
        )
    except UserError as exc:
        _fail(exc)


@contextlib.asynccontextmanager
async def _embedded_relay() -> AsyncIterator[tuple[str, Any]]:
    """A relay inside this process on 127.0.0.1 (the default when no relay is given).

    Its account store lives in the state folder; this machine's device is provisioned
    there silently on first use, so the session needs no login step.
    """
    import time

    from tether.auth.keys import public_key_raw
    from tether.host.device import Devices, embedded_identity, local_device_key
    from tether.paths import state_dir
    from tether.relay.accounts import AccountStore
    from tether.relay.server import EmbeddedRelay, RelayConfig

    devices = Devices()
    key = local_device_key(devices)
    store = AccountStore(f"sqlite:///{state_dir() / 'embedded-relay.db'}")
    await asyncio.to_thread(store.migrate)
    device = await asyncio.to_thread(
        store.provision_local, public_key_raw(key), "this machine", time.time(), os.urandom
    )
    try:
        async with EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0), store=store) as relay:
            yield relay.url, embedded_identity(relay.url, device.id, key)
    finally:
        store.close()


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
    relay_ca: RelayCaOption = None,
    tunnel: TunnelOption = None,
    sandbox: SandboxOption = None,
    skip_permissions: SkipOption = False,
    accept_device: AcceptOption = False,
) -> None:
    """Interactive session in the current folder; /remote turns Remote Control on or off."""
    if ctx.invoked_subcommand is not None:
        return
    from tether.host.app import run_interactive

    _run(
        lambda: run_interactive(
            _options(agent, relay, sandbox, skip_permissions, remote=remote, tunnel=tunnel, relay_ca=relay_ca,
                     accept_device=accept_device)
        )
    )


@app.command()
def rc(
    name: Annotated[str | None, typer.Option("--name", help="A name for this session.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print one JSON line {"url", "session_id"}.')] = False,
    agent: AgentOption = None,
    relay: RelayOption = None,
    relay_ca: RelayCaOption = None,
    tunnel: TunnelOption = None,
    sandbox: SandboxOption = None,
    skip_permissions: SkipOption = False,
    accept_device: AcceptOption = False,
) -> None:
    """Server mode: a headless remote-controlled session; prints the URL and a QR code.

    A dropped relay link reconnects by itself within remote.outage_window (600 s by default).

    Exit status: 0 stopped (Ctrl-C, SIGTERM, SIGHUP); 1 Remote Control ended; 2 refused at the start;
    3 the relay link stayed away longer than remote.outage_window.
    """
    from tether.host.app import run_rc

    _run(lambda: run_rc(_options(agent, relay, sandbox, skip_permissions, True, as_json, name, tunnel, relay_ca,
                                 accept_device)))  # fmt: skip


@app.command()
def trust(
    folder: Annotated[Path | None, typer.Argument(help="Folder to trust (default: the current one).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List trusted folders.")] = False,
) -> None:
    """Trust a folder, so Remote Control may run the agent in it."""
    from tether.host.trust import TrustStore, broad

    store = TrustStore()
    try:
        if list_:
            for trusted in store.folders():
                print(trusted)
            return
        trusted = store.trust(folder or Path.cwd())
    except UserError as exc:
        _fail(exc)
    print(f"Trusted {trusted}")
    if warning := broad(trusted, Path.home()):
        err.print(f"[yellow]Warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


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
    from rich.markup import escape

    # The message may quote what others wrote (an agent's log, a path): printed as text, never as markup.
    err.print(f"[bold red]Error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
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
        parsed = Config().set(key, value)
    except UserError as exc:
        _fail(exc)
    print(f"{key} = {_shown(parsed)}")


def _shown(value: Any) -> str:
    return "(not set)" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@config_app.command("unset")
def config_unset(key: Annotated[str, typer.Argument(help="A key such as agent.default.")]) -> None:
    """Remove one key from the file: its default applies again."""
    from tether.config import Config

    try:
        config = Config()
        removed = config.unset(key)
        default = config.key(key).default
    except UserError as exc:
        _fail(exc)
    state = "restored to its default" if removed else "was not set; it has its default"
    print(f"{key} {state}: {_shown(default)}")


@config_app.command("list")
def config_list() -> None:
    """Every key, its value, where the value comes from, and what it does; then the permission rules."""
    from tether.config import Config, ConfigError
    from tether.host.permissions import RuleError, rules_from

    try:
        config = Config()
        rows = config.sources()
        rules, _ = rules_from(config.table("permissions"), str(config.path))
    except RuleError as exc:
        _fail(ConfigError(str(exc)))
    except UserError as exc:
        _fail(exc)
    for key, value, source in rows:
        print(f"{key.name} = {_shown(value)}    [{source}]    # {key.help}")
    for action in ("deny", "ask", "allow"):
        listed = [f'"{rule}"' for rule in rules if rule.action == action]
        if listed:
            print(f"permissions.{action} = [{', '.join(listed)}]    [{config.path}]")


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


def _public_url(value: str | None) -> str | None:
    """--public-url must be an http(s) base address (checked as the relay's config checks it)."""
    from tether.relay.config import RelayConfig

    if value is not None:
        try:
            RelayConfig(public_url=value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


@relay_app.command("serve")
def relay_serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8787,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="The relay's address as browsers and hosts reach it (behind TLS); every URL it gives out uses it.",
            callback=_public_url,
        ),
    ] = None,
    broker: Annotated[
        str, typer.Option(help="Where routing lives: memory (one process), or redis://HOST:PORT/DB (several relays).")
    ] = "memory",
    db: Annotated[str | None, typer.Option(help=accounts.DB_HELP)] = None,
    keys: Annotated[
        str | None, typer.Option(help="Signing key set (JSON, made 0600 on first start; share it between relays).")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate (chain): serve HTTPS/WSS. Needs --tls-key.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    operator_token: Annotated[
        str | None,
        typer.Option(
            "--operator-token",
            envvar="TETHER_RELAY_OPERATOR_TOKEN",
            help="Bearer token that reads /metrics (prefer the variable: flags show in ps). Unset: /metrics is off.",
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="Address (or CIDR) of a reverse proxy whose X-Forwarded-For names the client; repeatable.",
        ),
    ] = None,
    sessions_per_address: Annotated[
        int, typer.Option(help="Sessions one client address may hold at once (more: closed 4429).")
    ] = SESSIONS_PER_ADDRESS,
    max_connections: Annotated[
        int | None, typer.Option(help="Open connections at most (default: 4096, or what `ulimit -n` allows).")
    ] = None,
    max_queued_mib: Annotated[
        int, typer.Option(help="MiB of frames the relay holds for slow readers, all sessions together.")
    ] = TOTAL_QUEUE_BYTES // 2**20,
    handshake_timeout: Annotated[
        float, typer.Option(help="Seconds a connection has to send its request (and finish TLS).")
    ] = HANDSHAKE_TIMEOUT,
    slow_timeout: Annotated[
        float, typer.Option(help="Seconds a reader may leave its queue full before it is closed 4408.")
    ] = SLOW_TIMEOUT,
) -> None:
    """Run a standalone relay until stopped."""
    from tether.relay.config import relay_public_base
    from tether.relay.server import RelayConfig, serve

    config = RelayConfig(host=host, port=port, public_url=public_url, broker=broker,
                         db=db or accounts.default_db(), keys_file=keys or accounts.default_keys())  # fmt: skip
    try:
        config = dataclasses.replace(
            config,
            tls_cert=str(tls_cert) if tls_cert else None,
            tls_key=str(tls_key) if tls_key else None,
            operator_token=operator_token or None,
            trusted_proxies=tuple(trusted_proxy or ()),
            sessions_per_address=sessions_per_address,
            max_connections=max_connections,
            total_queue_bytes=max_queued_mib * 2**20,
            handshake_timeout=handshake_timeout,
            slow_timeout=slow_timeout,
        )
    except ValueError as exc:
        _fail(UserError(str(exc)))
    scheme = "https" if tls_cert else "http"
    err.print(f"tether relay starting on {scheme}://{host}:{port} (Ctrl-C stops it)", highlight=False)
    if public_url:
        err.print(f"Public address: {relay_public_base(config)} (the URLs it gives out start there)", highlight=False)

    async def main() -> int:
        await serve(config)
        return 0

    _run(main)


def _log_to_file() -> None:
    """Library warnings (ACP SDK, uvicorn) go to logs/tether.log, not over the conversation.

    Through a handler that never raises (tether/logs.py): logging must not be what stops
    a relay that runs out of descriptors.
    """
    from tether.logs import log_to_file
    from tether.paths import logs_dir

    log_to_file(logs_dir() / "tether.log")


accounts.register(app, relay_app, _fail)
devices.register(app, _fail)


def main() -> None:
    """Console-script entry point."""
    _log_to_file()
    app(prog_name="tether")


if __name__ == "__main__":
    main()
