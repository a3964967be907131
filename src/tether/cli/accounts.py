"""Accounts and devices: `tether login/logout` on a developer's machine, `tether relay
invite/accounts/devices` on the relay's server. Typer commands only: the work is in
host/device.py and relay/accounts.py."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Annotated, NoReturn, ParamSpec

import typer
from rich.console import Console

from tether.errors import CredentialRefused, UserError

out = Console(highlight=False)
P = ParamSpec("P")

DB_HELP = "Account store: sqlite:///PATH or postgresql://USER@HOST/DB (default: relay.db in the state folder)."


def default_db() -> str:
    from tether.paths import state_dir

    return f"sqlite:///{state_dir() / 'relay.db'}"


def default_keys() -> str:
    from tether.paths import state_dir

    return str(state_dir() / "relay-keys.json")


def _store(db: str | None):  # type: ignore[no-untyped-def]
    from tether.relay.accounts import AccountStore

    store = AccountStore(db or default_db())
    store.migrate()
    return store


def login(
    invite: Annotated[str, typer.Argument(help="The invite URL from the relay's operator (https://RELAY/login#CODE).")],
    name: Annotated[str | None, typer.Option(help="A name for this machine (default: its host name).")] = None,
) -> None:
    """Register this machine's device key with a relay account."""
    from tether.host.device import Devices
    from tether.host.device import login as do_login

    identity = do_login(invite, Devices(), name)
    out.print(f"Logged in to {identity.relay} as {identity.account} (device {identity.device}).")


def logout(
    relay: Annotated[str, typer.Argument(help="The relay URL to log out of.")],
) -> None:
    """Revoke this machine's device at the relay and forget its key here."""
    from tether.host.device import Devices
    from tether.host.device import logout as do_logout

    device = do_logout(relay, Devices())
    out.print(f"Logged out: device {device} is revoked.")


def invite(
    account: Annotated[str, typer.Argument(help="The account to invite a device to (created if new).")],
    public_url: Annotated[str, typer.Option("--public-url", help="The relay's address as users reach it.")] = (
        "http://127.0.0.1:8787"
    ),
    db: Annotated[str | None, typer.Option(help=DB_HELP)] = None,
    hours: Annotated[float, typer.Option(help="How long the invite works.")] = 24.0,
) -> None:
    """A one-time invite URL for `tether login` (run on the relay's server)."""
    if hours <= 0:
        raise UserError("--hours must be positive")
    code = _store(db).invite(account, time.time(), os.urandom, hours * 3600)
    out.print(f"{public_url.rstrip('/')}/login#{code}", soft_wrap=True)


keys_app = typer.Typer(help="The relay's signing keys (run on the relay's server).", no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate(
    keys: Annotated[
        str | None, typer.Option(help="The key set file (default: relay-keys.json in the state folder).")
    ] = None,
) -> None:
    """Add a new signing key; older keys verify for an hour more, then retire. Restart the relays to use it."""
    from pathlib import Path

    from tether.auth.keys import KeySet

    path = Path(keys or default_keys())
    try:
        current = KeySet.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no key set at {path}: a relay makes one on its first start") from None
    except (ValueError, KeyError) as exc:
        raise UserError(f"{path} is not a tether key set: {exc}") from None
    key = current.rotate(time.time())
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out_file:
        out_file.write(current.to_json())
    os.replace(temporary, path)
    out.print(f"New signing key {key.kid}; {len(current.keys) - 1} older key(s) retire within the hour.")


accounts_app = typer.Typer(help="The relay's accounts (run on the relay's server).", no_args_is_help=True)
devices_app = typer.Typer(help="The relay's registered devices (run on the relay's server).", no_args_is_help=True)


@accounts_app.command("list")
def accounts_list(db: Annotated[str | None, typer.Option(help=DB_HELP)] = None) -> None:
    """Every account and whether it is revoked."""
    for account in _store(db).list_accounts():
        state = "revoked" if account["revoked"] else "active"
        out.print(f"{account['name']}  {state}")


@accounts_app.command("revoke")
def accounts_revoke(name: str, db: Annotated[str | None, typer.Option(help=DB_HELP)] = None) -> None:
    """Revoke an account and every device of it."""
    if not _store(db).revoke_account(name, time.time()):
        raise UserError(f"no active account {name!r}")
    out.print(f"Account {name} is revoked.")


@devices_app.command("list")
def devices_list(
    account: Annotated[str | None, typer.Option(help="Only this account's devices.")] = None,
    db: Annotated[str | None, typer.Option(help=DB_HELP)] = None,
) -> None:
    """Every device: id, account, name, state."""
    for device in _store(db).list_devices(account):
        state = "revoked" if device.revoked else "active"
        out.print(f"{device.id}  {device.account}  {device.name}  {state}")


@devices_app.command("revoke")
def devices_revoke(device_id: str, db: Annotated[str | None, typer.Option(help=DB_HELP)] = None) -> None:
    """Revoke one device: it can no longer start sessions."""
    if not _store(db).revoke_device(device_id, time.time()):
        raise UserError(f"no active device {device_id!r}")
    out.print(f"Device {device_id} is revoked.")


def register(app: typer.Typer, relay_app: typer.Typer, fail: Callable[[UserError], NoReturn]) -> None:
    """Add these commands to the CLI; ``fail`` prints a UserError without a traceback."""

    def guarded(command: Callable[P, None]) -> Callable[P, None]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            try:
                command(*args, **kwargs)
            except UserError as exc:
                fail(exc)
            except CredentialRefused as exc:
                fail(UserError(f"the relay refused: {exc}"))

        return run

    app.command("login")(guarded(login))
    app.command("logout")(guarded(logout))
    relay_app.command("invite")(guarded(invite))
    for group in (accounts_app, devices_app, keys_app):
        for command in group.registered_commands:
            assert command.callback is not None
            command.callback = guarded(command.callback)
    relay_app.add_typer(accounts_app, name="accounts")
    relay_app.add_typer(devices_app, name="devices")
    relay_app.add_typer(keys_app, name="keys")
