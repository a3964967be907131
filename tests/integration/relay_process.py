"""A real `tether relay serve` process, and sessions on it opened as a host and a browser open them.

For the tests that attack the relay from outside (floods, bad input, TLS). The relay
signs with a key set the test wrote (``--keys``), so a host here presents a
session-initiation token minted with it, as a logged-in device gets one; the viewer
presents the viewer-join token the relay hands the host. ``nofile`` runs the relay under
a lower descriptor limit (soft and hard), as ``ulimit -n`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import resource
import secrets
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import ClientConnection

from tests.conftest import TETHER, UNIT, free_port, stop
from tether.auth.keys import KeySet
from tether.auth.tokens import Purpose, mint

OPERATOR_TOKEN = "operator-" + "x" * 24


@dataclass
class RelayProcess:
    """A running relay: its URL, key set, and what its process looks like from outside."""

    process: subprocess.Popen[bytes]
    url: str
    keys: KeySet
    tls: ssl.SSLContext | None = None
    stderr_path: Path | None = None
    sessions: list[tuple[ClientConnection, ClientConnection]] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        """The relay's base URL for WebSockets."""
        return self.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)

    def alive(self) -> bool:
        """Whether the relay process still runs."""
        return self.process.poll() is None

    def rss_mib(self) -> float:
        """The relay's resident memory now (VmRSS), in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS in /proc status")

    def stderr(self) -> str:
        """What the relay wrote to stderr so far."""
        assert self.stderr_path is not None
        return self.stderr_path.read_text(errors="replace")

    async def metrics(self) -> dict[str, Any]:
        """The operator's figures (/metrics with the operator token)."""
        async with httpx.AsyncClient(timeout=5 * UNIT, verify=self.tls or True) as client:
            response = await client.get(f"{self.url}/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert 200 == response.status_code, response.text
        figures: dict[str, Any] = response.json()
        return figures

    def initiation_token(self) -> str:
        """A session-initiation token, as the relay gives a logged-in device."""
        token, _ = mint(self.keys, Purpose.INITIATE, "test-device", time.time(), os.urandom)
        return token


def _limit_descriptors(nofile: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))


@dataclass(frozen=True)
class PrivateCA:
    """A private CA and a server certificate it signed for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path

    def client(self) -> ssl.SSLContext:
        """A client context that trusts only this CA."""
        return ssl.create_default_context(cafile=str(self.ca))


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(folder: Path, name: str = "tether test CA") -> PrivateCA:
    """A CA, and a certificate for IP 127.0.0.1 (and localhost) signed by it, as PEM files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = PrivateCA(folder / "ca.pem", folder / "relay.pem", folder / "relay-key.pem")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@contextlib.contextmanager
def relay_process(
    tmp_path: Path,
    env: dict[str, str],
    *args: str,
    nofile: int | None = None,
    tls: tuple[Path, Path, ssl.SSLContext] | None = None,
    keys: KeySet | None = None,
) -> Iterator[RelayProcess]:
    """`tether relay serve` on a free port of 127.0.0.1 with ``args``; stopped when the block ends.

    ``tls`` is (certificate, key, a client context that trusts it); ``keys``: the key set
    to sign with (relays that share sessions share it), else a new one.
    """
    keys = keys or KeySet.generate(time.time())
    keys_file = tmp_path / "relay-keys.json"
    keys_file.write_text(keys.to_json(), encoding="utf-8")
    keys_file.chmod(0o600)
    port = free_port()
    command = [*TETHER, "relay", "serve", "--host", "127.0.0.1", "--port", str(port), "--keys", str(keys_file)]
    if tls is not None:
        command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    stderr_path = tmp_path / f"relay-{port}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, *args],
            env={**env, "TETHER_RELAY_OPERATOR_TOKEN": OPERATOR_TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=(lambda: _limit_descriptors(nofile)) if nofile else None,
        )
    scheme = "https" if tls is not None else "http"
    relay = RelayProcess(process, f"{scheme}://127.0.0.1:{port}", keys, tls[2] if tls else None, stderr_path)
    try:
        _wait_ready(relay)
        yield relay
    finally:
        stop(process)


def _wait_ready(relay: RelayProcess) -> None:
    deadline = time.monotonic() + 10 * UNIT
    while True:
        try:
            if httpx.get(f"{relay.url}/healthz", timeout=UNIT, verify=relay.tls or True).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not relay.alive():
            raise RuntimeError(f"relay did not start: {relay.stderr()}")
        time.sleep(0.05)


async def control(ws: ClientConnection, kind: str, within: float = 5 * UNIT) -> dict[str, Any]:
    """The next relay control message of type ``kind`` (others before it are skipped)."""
    async with asyncio.timeout(within):
        while True:
            message = await ws.recv()
            if isinstance(message, str) and (parsed := json.loads(message)).get("type") == kind:
                result: dict[str, Any] = parsed
                return result


async def open_host(relay: RelayProcess, **options: Any) -> tuple[str, ClientConnection, str]:
    """A host end of a new session: (session id, connection, viewer-join token)."""
    session_id = secrets.token_urlsafe(16)
    host = await websockets.connect(
        f"{relay.ws_url}/v1/host/{session_id}",
        compression=None,
        open_timeout=5 * UNIT,
        additional_headers={"Authorization": f"Bearer {relay.initiation_token()}", **options.pop("headers", {})},
        ssl=relay.tls,
        **options,
    )
    credentials = await control(host, "credentials")
    return session_id, host, str(credentials.get("join", ""))


async def open_viewer(relay: RelayProcess, session_id: str, join: str, **options: Any) -> ClientConnection:
    """The viewer end of ``session_id``, joined with its viewer-join token."""
    viewer = await websockets.connect(
        f"{relay.ws_url}/v1/viewer/{session_id}", compression=None, open_timeout=5 * UNIT, ssl=relay.tls, **options
    )
    await viewer.send(json.dumps({"type": "join", "token": join}))
    return viewer


@dataclass
class LiveSession:
    """A host and its viewer, both past `peer joined`: a session in use beside whatever the test does."""

    host: ClientConnection
    viewer: ClientConnection
    exchanged: int = 0

    async def exchange(self, within: float = 5 * UNIT) -> None:
        """One frame each way, each arriving unchanged."""
        self.exchanged += 1
        to_viewer, to_host = f"to viewer {self.exchanged}".encode(), f"to host {self.exchanged}".encode()
        async with asyncio.timeout(within):
            await self.host.send(to_viewer)
            await self.viewer.send(to_host)
            assert (to_viewer, to_host) == (await _binary(self.viewer), await _binary(self.host))

    async def close(self) -> None:
        """Close both ends."""
        await self.host.close()
        await self.viewer.close()


async def _binary(ws: ClientConnection) -> bytes:
    while True:
        message = await ws.recv()
        if isinstance(message, bytes):
            return message


async def live_session(relay: RelayProcess) -> LiveSession:
    """A new session with both ends joined, that has exchanged one frame each way."""
    session_id, host, join = await open_host(relay)
    viewer = await open_viewer(relay, session_id, join)
    await control(host, "peer")
    await control(viewer, "peer")
    session = LiveSession(host, viewer)
    await session.exchange()
    return session
