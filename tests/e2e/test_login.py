"""Accounts from the outside: invite, login, a session, logout and revocation, with real processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import TETHER, UNIT, log_in, start_rc, stop
from tether.testing import ViewerClient


def tether(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*TETHER, *args], env=env, cwd=cwd, capture_output=True, timeout=60 * UNIT)


def test_a_machine_that_never_logged_in_is_told_how(project: Path, tether_env: dict[str, str], relay: str) -> None:
    """rc against a relay this machine has no device at: one line naming `tether login`, exit 2."""
    (Path(tether_env["TETHER_STATE_DIR"]) / "devices.json").unlink()
    result = tether(tether_env, "rc", "--relay", relay, "--agent", "demo", "--json", cwd=project)
    assert 2 == result.returncode
    assert b"tether login" in result.stderr and b"Traceback" not in result.stderr


def test_an_invite_works_once(tether_env: dict[str, str], relay: str) -> None:
    """The second login with the same invite URL is refused with a clear line."""
    invite = tether(tether_env, "relay", "invite", "bob", "--public-url", relay).stdout.decode().strip()
    assert 0 == tether(tether_env, "login", invite).returncode
    again = tether(tether_env, "login", invite)
    assert 2 == again.returncode and b"replayed" in again.stderr and b"Traceback" not in again.stderr


async def test_logged_in_a_session_runs_and_logout_revokes(
    project: Path, tether_env: dict[str, str], relay: str
) -> None:
    """After login a session works from the URL (its fragment admits the viewer); after logout it cannot start."""
    run = start_rc(project, tether_env, relay)
    try:
        assert "#j=v4.public." in run.url
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("say admitted")
            await viewer.wait_for(lambda v: any("admitted" in t for t in v.texts("agent")), 10 * UNIT)
    finally:
        stop(run.process)
    assert 0 == tether(tether_env, "logout", relay).returncode
    result = tether(tether_env, "rc", "--relay", relay, "--agent", "demo", "--json", cwd=project)
    assert 2 == result.returncode and b"tether login" in result.stderr


def test_a_device_the_operator_revoked_cannot_start_sessions(
    project: Path, tether_env: dict[str, str], relay: str
) -> None:
    """`tether relay devices revoke ID` on the server: the machine is refused at its next session."""
    devices = json.loads((Path(tether_env["TETHER_STATE_DIR"]) / "devices.json").read_text())
    (entry,) = devices.values()
    assert 0 == tether(tether_env, "relay", "devices", "revoke", entry["device"]).returncode
    result = tether(tether_env, "rc", "--relay", relay, "--agent", "demo", "--json", cwd=project)
    assert 2 == result.returncode and b"refused this device" in result.stderr
    log_in(relay, tether_env)  # a new invite registers the machine again
    run = start_rc(project, tether_env, relay, agent="demo")
    stop(run.process)


def test_rotating_the_relay_keys_keeps_them_in_one_file(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """`tether relay keys rotate` adds a signing key and keeps the old one (to verify until it retires), 0600."""
    from tether.auth.keys import KeySet
    from tether.relay.app import load_keys

    path = tmp_path / "keys.json"
    first = load_keys(str(path), 0.0)
    assert 0 == tether(tether_env, "relay", "keys", "rotate", "--keys", str(path)).returncode
    rotated = KeySet.from_json(path.read_text())
    assert [k.kid for k in first.keys] == [k.kid for k in rotated.keys[:1]] and 2 == len(rotated.keys)
    assert rotated.keys[0].retired is not None and 0o600 == path.stat().st_mode & 0o777


def test_login_over_plain_http_off_this_machine_is_refused(tether_env: dict[str, str]) -> None:
    """An invite URL on plain http to another machine is refused before anything is sent."""
    result = tether(tether_env, "login", "http://relay.example.org/login#code")
    assert 2 == result.returncode and b"https" in result.stderr and b"Traceback" not in result.stderr
