"""The relay's account store, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import postgres_server
from tether.auth.tokens import Refusal
from tether.errors import CredentialRefused
from tether.relay.accounts import LOCAL_ACCOUNT, AccountStore

NOW = 1_000_000.0
KEY = bytes(range(32))


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccountStore]:
    sqlite = f"sqlite:///{tmp_path / 'relay.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    accounts = AccountStore(url)
    accounts.migrate()
    yield accounts
    if request.param == "postgresql":  # one server for the module: leave it empty for the next test
        with accounts.engine.begin() as db:
            for table in ("invites", "devices", "accounts"):
                db.exec_driver_sql(f"DELETE FROM {table}")
    accounts.close()


def refused(reason: Refusal, call: object, *args: object) -> None:
    with pytest.raises(CredentialRefused) as caught:
        call(*args)  # type: ignore[operator]
    assert reason == caught.value.reason


def test_an_invite_registers_one_device_once(store: AccountStore) -> None:
    """An invite code registers a device with its account; the same code again is a replay."""
    code = store.invite("alice", NOW, os.urandom)
    device = store.redeem(code, KEY, "laptop", NOW + 1, os.urandom)
    assert ("alice", KEY, "laptop") == (device.account, device.public_key, device.name)
    assert device == store.device(device.id)
    refused(Refusal.REPLAYED, store.redeem, code, KEY, "again", NOW + 2, os.urandom)


def test_an_expired_or_unknown_invite_is_refused(store: AccountStore) -> None:
    """Invites expire; a code the store never made is refused."""
    code = store.invite("alice", NOW, os.urandom, 60)
    refused(Refusal.EXPIRED, store.redeem, code, KEY, "late", NOW + 60, os.urandom)
    refused(Refusal.BAD_PROOF, store.redeem, "made-up", KEY, "x", NOW, os.urandom)


def test_revoked_devices_and_accounts_are_gone(store: AccountStore) -> None:
    """A revoked device is not found; revoking an account revokes its devices and refuses new invites."""
    first = store.redeem(store.invite("bob", NOW, os.urandom), KEY, "a", NOW, os.urandom)
    second = store.redeem(store.invite("bob", NOW, os.urandom), bytes(32), "b", NOW, os.urandom)
    assert store.revoke_device(first.id, NOW + 1) and not store.revoke_device(first.id, NOW + 2)
    assert None is store.device(first.id) and store.device(second.id) is not None
    assert store.revoke_account("bob", NOW + 3)
    assert None is store.device(second.id)
    refused(Refusal.REVOKED, store.invite, "bob", NOW + 4, os.urandom)


def test_the_local_account_is_provisioned_once_per_key(store: AccountStore) -> None:
    """The embedded relay's first use creates the local account and device; later uses find the same one."""
    first = store.provision_local(KEY, "this machine", NOW, os.urandom)
    again = store.provision_local(KEY, "this machine", NOW + 5, os.urandom)
    assert first == again and LOCAL_ACCOUNT == first.account
    assert [LOCAL_ACCOUNT] == [a["name"] for a in store.list_accounts()]


def test_a_device_key_must_be_an_ed25519_public_key(store: AccountStore) -> None:
    """Anything but 32 bytes is refused before it is stored."""
    refused(Refusal.MALFORMED, store.redeem, store.invite("eve", NOW, os.urandom), b"short", "x", NOW, os.urandom)
