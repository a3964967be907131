"""``tether devices`` and ``tether audit``: the browsers paired with this machine, and what was decided.

Paired devices, pairing questions and the audit log live in the state folder
(host/paired.py); these commands only read and change those files. A running host notices
a revocation within a second and drops that device's connection.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tether.errors import DeviceNotPaired, NothingToPair, UserError

out = Console()


def _when(stamp: object) -> str:
    if not isinstance(stamp, int | float):
        return "?"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def register(app: typer.Typer, fail: Callable[[UserError], NoReturn]) -> None:
    devices_app = typer.Typer(help="Browsers paired with this machine (list, revoke, accept).")
    app.add_typer(devices_app, name="devices")

    @devices_app.callback(invoke_without_command=True)
    def devices(ctx: typer.Context) -> None:
        """List the paired devices: name, id, first and last seen."""
        if ctx.invoked_subcommand is not None:
            return
        from tether.host.paired import PairedDevices

        try:
            paired = PairedDevices().read()
        except OSError as exc:
            fail(UserError(str(exc)))
        if not paired:
            out.print("No paired devices. A browser is paired when you confirm its code at the terminal.")
            return
        table = Table("id", "name", "first seen", "last seen")
        for device_id, known in sorted(paired.items(), key=lambda item: -float(item[1].get("last_seen") or 0)):
            table.add_row(device_id, escape(str(known.get("name"))), _when(known.get("first_seen")),
                          _when(known.get("last_seen")))  # fmt: skip
        out.print(table)

    @devices_app.command("revoke")
    def revoke(device_id: Annotated[str, typer.Argument(help="The device's id, from `tether devices`.")]) -> None:
        """Forget a paired device at once; a session it is connected to drops it within a second."""
        from tether.host.paired import PairedDevices

        gone = PairedDevices().revoke(device_id)
        if gone is None:
            fail(DeviceNotPaired(f"No paired device has the id {device_id!r}."))
        out.print(f"Revoked {escape(str(gone.get('name')))} ({device_id}).")

    @devices_app.command("accept")
    def accept(
        yes: Annotated[bool, typer.Option("--yes", help="Pair without asking (only when exactly one waits).")] = False,
    ) -> None:
        """Answer a pairing question of a running `tether rc` that has no terminal: compare the codes, then y."""
        from tether.host.paired import PairingRequests

        requests = PairingRequests()
        waiting = requests.pending()
        if not waiting:
            fail(NothingToPair("No device is waiting to be paired."))
        if yes and len(waiting) != 1:
            fail(NothingToPair("Several devices wait to be paired: answer each one without --yes."))
        for request in waiting:
            question = f"pair {request['name']} ({request['device']}), code {request['code']}?"
            answer = yes or typer.confirm(question, default=False)
            requests.answer(request, answer)
            out.print(f"{'Pairing' if answer else 'Refusing'} {escape(str(request['name']))}: the session "
                      "picks the answer up within a second.")  # fmt: skip

    @app.command("audit")
    def audit(last: Annotated[int, typer.Option("--last", help="Show only the last N decisions.")] = 50) -> None:
        """Every decision on a tool call: when, who (the terminal or which device), what, the outcome."""
        from tether.host.paired import AuditLog

        records = AuditLog().read()[-last:] if last > 0 else AuditLog().read()
        if not records:
            out.print("No decisions recorded yet.")
            return
        table = Table("when", "who", "what", "outcome", "shown (sha256)")
        for record in records:
            table.add_row(_when(record.get("at")), escape(str(record.get("by"))), escape(str(record.get("title"))),
                          escape(f"{record.get('state')} {record.get('outcome') or ''}".strip()),
                          str(record.get("shown_sha256", ""))[:16])  # fmt: skip
        out.print(table)
