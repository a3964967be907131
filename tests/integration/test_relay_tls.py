"""Transport security with real processes: a relay serving HTTPS/WSS itself, a host that verifies it.

The tests make their own CA and a certificate for 127.0.0.1 with `cryptography`, run
`tether relay serve --tls-cert --tls-key`, log this machine in over https and run a real
`tether rc` against it with `--relay-ca`. A plain-http relay off this machine is refused
before any connection is tried.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SCRIPTED_AGENT, TETHER, UNIT, stop
from tests.integration.relay_process import live_session, make_ca, relay_process
from tether.testing import ViewerClient


def tether(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a `tether` command to its end."""
    return subprocess.run([*TETHER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60 * UNIT)


def start_rc(project: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`tether rc --json` with the scripted agent; the process and its JSON line."""
    process = subprocess.Popen(
        [*TETHER, "rc", "--agent", SCRIPTED_AGENT, "--json", "--accept-device", *args],
        cwd=project,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline()
    if not line:
        process.wait(10 * UNIT)
        error = process.stderr.read().decode()
        stop(process)
        raise AssertionError(f"tether rc printed nothing: {error}")
    return process, json.loads(line)


async def test_tls_relay_serves_a_session_to_a_host_that_verifies_it(
    tmp_path: Path, tether_env: dict[str, str], project: Path
) -> None:
    """`relay serve --tls-cert/--tls-key` serves HTTPS/WSS; `tether rc --relay-ca` verifies it and a viewer drives the session."""  # noqa: E501
    pki = make_ca(tmp_path / "pki")
    env = {**tether_env, "TETHER_KEYRING": "0"}
    with relay_process(tmp_path, env, tls=(pki.cert, pki.key, pki.client())) as relay:
        assert relay.url.startswith("https://127.0.0.1:")
        await (await live_session(relay)).close()  # raw WSS both ways
        invite = tether(env, "relay", "invite", "alice", "--public-url", relay.url).stdout.strip()
        # The config key serves every command (login here), the flag one run.
        assert 0 == tether(env, "config", "set", "relay.ca", str(pki.ca)).returncode
        login = tether(env, "login", invite)
        assert 0 == login.returncode, login.stderr
        other = make_ca(tmp_path / "other", "some other CA")
        assert 0 == tether(env, "config", "set", "relay.ca", str(other.ca)).returncode
        process, line = start_rc(project, env, "--relay", relay.url, "--relay-ca", str(pki.ca))
        try:
            assert line["url"].startswith(f"{relay.url}/s/")
            async with ViewerClient(line["url"], tls=pki.client()) as viewer:
                await viewer.prompt("say hello over tls")
                await viewer.wait_for(lambda v: "hello over tls" in v.texts("agent"), 10 * UNIT)
        finally:
            stop(process)


async def test_host_refuses_a_relay_whose_certificate_does_not_verify(
    tmp_path: Path, tether_env: dict[str, str], project: Path
) -> None:
    """Without the relay's CA (system store, or another CA), `tether rc` refuses the relay, exit 2, no traceback."""
    pki = make_ca(tmp_path / "pki")
    env = {**tether_env, "TETHER_KEYRING": "0"}
    with relay_process(tmp_path, env, tls=(pki.cert, pki.key, pki.client())) as relay:
        invite = tether(env, "relay", "invite", "alice", "--public-url", relay.url).stdout.strip()
        assert 0 == tether(env, "config", "set", "relay.ca", str(pki.ca)).returncode
        assert 0 == tether(env, "login", invite).returncode
        assert 0 == tether(env, "config", "set", "relay.ca", str(make_ca(tmp_path / "other", "other CA").ca)).returncode
        result = tether(env, "rc", "--relay", relay.url, "--agent", SCRIPTED_AGENT, "--json", cwd=project)
        assert 2 == result.returncode
        assert "certificate" in result.stderr.lower() and "Traceback" not in result.stderr
        assert "" == result.stdout


@pytest.mark.parametrize(
    "relay", ["http://192.0.2.10:8787", "ws://relay.example.org", "http://10.1.2.3", "http://[2001:db8::1]:80"]
)
def test_plain_http_relay_off_this_machine_is_refused(tether_env: dict[str, str], project: Path, relay: str) -> None:
    """A plain http:// or ws:// relay that is not loopback is refused in one line, saying why and what to do."""
    result = tether(tether_env, "rc", "--relay", relay, "--agent", SCRIPTED_AGENT, "--json", cwd=project)
    assert 2 == result.returncode
    first, *rest = result.stderr.strip().splitlines()
    assert first.startswith("Error: refusing the relay") and "plain" in first
    assert "https://" in " ".join(rest) and "--tunnel" in " ".join(rest)
    assert "Traceback" not in result.stderr


def test_relay_refuses_unusable_tls_files(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """`relay serve` with a missing certificate or a key without certificate stops with one clear error."""
    missing = tether(tether_env, "relay", "serve", "--port", "0", "--tls-cert", str(tmp_path / "nope.pem"),
                     "--tls-key", str(tmp_path / "nope-key.pem"))  # fmt: skip
    alone = tether(tether_env, "relay", "serve", "--port", "0", "--tls-key", str(tmp_path / "nope-key.pem"))
    for result in (missing, alone):
        assert 2 == result.returncode
        assert "Traceback" not in result.stderr and "Error:" in result.stderr
