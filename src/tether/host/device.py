"""This machine's device identity at each relay: an Ed25519 key and the device id it got.

``tether login <invite URL>`` makes a key, registers its public half with the relay
(``POST /v1/login``) and remembers ``{relay origin: device id, account}`` in the state
folder (``devices.json``). The private key goes to the OS keyring through ``keyring``; where
no keyring exists (a server, CI) it is a 0600 file beside the list. ``tether logout``
revokes the device at the relay and forgets both. The embedded relay provisions its own
local device silently (``embedded_identity``).

Before each session the host proves it holds the key (auth/proof.py) to get a
single-use session-initiation token (``POST /v1/initiate``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tether.auth import proof as proofs
from tether.auth.keys import public_key_raw
from tether.errors import CredentialRefused, NotLoggedIn, RelayUnreachable, UserError
from tether.host import tls
from tether.paths import state_dir

KEYRING_SERVICE = "tether"
HTTP_TIMEOUT = 15.0


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a relay URL, the key devices are filed under (ws(s) as http(s))."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise RelayUnreachable(f"{url!r} is not an http(s):// relay URL")
    return f"{scheme}://{parts.netloc}"


@dataclass(frozen=True)
class DeviceIdentity:
    """A registered device: where, which id, and its private key."""

    relay: str  # origin
    device: str
    account: str
    key: Ed25519PrivateKey

    def proof(self) -> proofs.Proof:
        return proofs.sign(self.key, self.device, self.relay, time.time(), os.urandom)


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()  # fmt: skip


def _load(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError("the stored device key is not an Ed25519 key; run `tether logout` and log in again")
    return key


class Devices:
    """The devices of this machine, one per relay (see module doc)."""

    def __init__(self, folder: Path | None = None, use_keyring: bool | None = None) -> None:
        self.folder = folder or state_dir()
        self.index = self.folder / "devices.json"
        self.use_keyring = os.environ.get("TETHER_KEYRING", "1") != "0" if use_keyring is None else use_keyring

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.index.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            raise UserError(f"{self.index} is damaged; remove it and log in again") from None
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.index.with_name(".devices.json.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
        os.replace(temporary, self.index)

    def _key_file(self, relay: str) -> Path:
        name = base64.urlsafe_b64encode(relay.encode()).decode().rstrip("=")
        return self.folder / "keys" / f"{name}.pem"

    def _store_key(self, relay: str, key: Ed25519PrivateKey) -> str:
        """Where the key went: ``keyring`` or ``file``."""
        if self.use_keyring:
            try:
                import keyring

                keyring.set_password(KEYRING_SERVICE, relay, _pem(key))
                return "keyring"
            except Exception:  # no usable keyring backend here: fall back to a private file
                pass
        path = self._key_file(relay)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(_pem(key))
        return "file"

    def _fetch_key(self, relay: str, where: str) -> Ed25519PrivateKey:
        if where == "keyring":
            import keyring

            pem = keyring.get_password(KEYRING_SERVICE, relay)
            if pem is None:
                raise NotLoggedIn(f"the device key for {relay} is missing from the keyring")
            return _load(pem)
        try:
            return _load(self._key_file(relay).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotLoggedIn(f"the device key for {relay} is missing ({self._key_file(relay)})") from None

    def _forget_key(self, relay: str, where: str) -> None:
        if where == "keyring":
            try:
                import keyring

                keyring.delete_password(KEYRING_SERVICE, relay)
            except Exception:  # already gone, or the keyring went away: nothing left to remove
                pass
        self._key_file(relay).unlink(missing_ok=True)

    def find(self, relay_url: str) -> DeviceIdentity | None:
        relay = origin(relay_url)
        entry = self._read().get(relay)
        if not isinstance(entry, dict):
            return None
        return DeviceIdentity(relay, entry["device"], entry["account"], self._fetch_key(relay, entry["key"]))

    def require(self, relay_url: str) -> DeviceIdentity:
        found = self.find(relay_url)
        if found is None:
            raise NotLoggedIn(f"this machine is not logged in to {origin(relay_url)}")
        return found

    def remember(self, relay: str, device: str, account: str, key: Ed25519PrivateKey) -> DeviceIdentity:
        where = self._store_key(relay, key)
        data = self._read()
        data[relay] = {"device": device, "account": account, "key": where}
        self._write(data)
        return DeviceIdentity(relay, device, account, key)

    def forget(self, relay: str) -> None:
        data = self._read()
        entry = data.pop(relay, None)
        if isinstance(entry, dict):
            self._forget_key(relay, str(entry.get("key")))
        self._write(data)


def parse_invite(url: str) -> tuple[str, str]:
    """``https://RELAY/login#CODE`` -> (relay origin, code)."""
    parts = urlsplit(url.strip())
    if not parts.fragment or not parts.path.rstrip("/").endswith("/login"):
        raise UserError(f"{url!r} is not an invite URL (it looks like https://RELAY/login#CODE)")
    return origin(url), parts.fragment


def _post(url: str, body: dict[str, Any], verify: Any = True) -> dict[str, Any]:
    try:
        response = httpx.post(url, json=body, timeout=HTTP_TIMEOUT, verify=tls.httpx_verify(verify))
    except httpx.HTTPError as exc:
        raise RelayUnreachable(f"cannot reach the relay at {url}: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code != 200:
        raise CredentialRefused(str(data.get("error") or response.status_code), f"the relay refused {url}")
    return data if isinstance(data, dict) else {}


def login(invite_url: str, devices: Devices, name: str | None = None, verify: Any = True) -> DeviceIdentity:
    """Register a new device key with the invite's account (``tether login``)."""
    relay, code = parse_invite(invite_url)
    tls.check_relay_url(relay)  # an invite over plain http off this machine would hand the device to anyone on the path
    key = Ed25519PrivateKey.generate()
    public = base64.urlsafe_b64encode(public_key_raw(key)).decode().rstrip("=")
    body = {"invite": code, "public_key": public, "name": name or socket.gethostname()}
    try:
        data = _post(f"{relay}/v1/login", body, verify)
    except CredentialRefused as exc:
        raise UserError(f"the relay refused the invite ({exc.reason}): ask its operator for a new one") from None
    return devices.remember(relay, str(data["device"]), str(data["account"]), key)


def logout(relay_url: str, devices: Devices, verify: Any = True) -> str:
    """Revoke this machine's device at the relay and forget it here; the device id."""
    identity = devices.require(relay_url)
    with contextlib.suppress(CredentialRefused):  # already revoked there: forgetting it here is what is left
        _post(f"{identity.relay}/v1/logout", {"proof": identity.proof().to_json()}, verify)
    devices.forget(identity.relay)
    return identity.device


async def initiation_token(identity: DeviceIdentity, verify: Any = True) -> str:
    """A fresh session-initiation token for this device (``POST /v1/initiate``)."""
    url = f"{identity.relay}/v1/initiate"
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, verify=tls.httpx_verify(verify)) as client:
            response = await client.post(url, json={"proof": identity.proof().to_json()})
    except httpx.HTTPError as exc:
        raise RelayUnreachable(f"cannot reach the relay at {identity.relay}: {exc}") from None
    if response.status_code != 200:
        reason = response.json().get("error", response.status_code) if response.content else response.status_code
        raise NotLoggedIn(f"the relay at {identity.relay} refused this device ({reason}); log in again")
    return str(response.json()["token"])


def embedded_identity(relay_url: str, device: str, key: Ed25519PrivateKey) -> DeviceIdentity:
    """The identity the embedded relay provisioned for this machine (kept in memory only)."""
    return DeviceIdentity(origin(relay_url), device, "local", key)


def local_device_key(devices: Devices) -> Ed25519PrivateKey:
    """This machine's key for the embedded relay, made on first use (a 0600 file in the state folder)."""
    path = devices.folder / "keys" / "embedded.pem"
    try:
        return _load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(_pem(key))
    return key
