"""The relay's account store: accounts, their devices' public keys, one-time invites.

This is all the relay keeps durably (DESIGN.md): no message content, no session, no
token. SQLAlchemy Core over SQLite by default (``sqlite:///PATH``) or PostgreSQL
(``postgresql://...``, driven by psycopg); the schema comes from Alembic migrations
(``migrations/``), applied by ``migrate()``. Calls block briefly: endpoints run them in a
thread. Time and randomness are parameters, as everywhere a rule is decided.

Invites are stored as a SHA-256 of their code, work once and expire; a redeemed invite
registers one device (an Ed25519 public key) with the account. Revoking an account
revokes its devices.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from tether.auth.tokens import Refusal
from tether.errors import CredentialRefused, UserError

INVITE_LIFETIME = 24 * 3600.0
LOCAL_ACCOUNT = "local"  # the embedded relay's account, provisioned on first use
MIGRATION_LOCK = 0x7E7E_0013  # PostgreSQL advisory lock held while migrating

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("revoked", sa.Float, nullable=True),
)  # fmt: skip
devices = sa.Table(
    "devices", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(64), sa.ForeignKey("accounts.name"), nullable=False, index=True),
    sa.Column("public_key", sa.LargeBinary(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("revoked", sa.Float, nullable=True),
)  # fmt: skip
invites = sa.Table(
    "invites", metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("account", sa.String(64), sa.ForeignKey("accounts.name"), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("used", sa.Float, nullable=True),
)  # fmt: skip


class StoreUnavailable(UserError):
    """Check --db: sqlite:///PATH or postgresql://USER@HOST/DB, and that the database is reachable."""


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    account: str
    public_key: bytes
    name: str
    created: float
    revoked: float | None = None


def engine_url(url: str) -> str:
    """The SQLAlchemy URL for a ``--db`` value (PostgreSQL through psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _token(random_bytes: Callable[[int], bytes], size: int) -> str:
    return base64.urlsafe_b64encode(random_bytes(size)).rstrip(b"=").decode()


class AccountStore:
    """See module doc."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = sa.create_engine(engine_url(url), pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreUnavailable(f"cannot use the account store {url!r}: {exc}") from None

    def migrate(self) -> None:
        """Bring the schema to the newest migration (creates it on first use)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(resources.files("tether.relay") / "migrations"))
        try:
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Relays that share one database may start at once: one migrates, the
                    # others wait for it and then find nothing left to do.
                    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(f"cannot open the account store {self.url!r}: {exc.orig}") from None

    def close(self) -> None:
        self.engine.dispose()

    def reachable(self) -> bool:
        """Whether the database answers a trivial query now (/readyz)."""
        try:
            with self.engine.connect() as db:
                db.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    # -- accounts and invites ------------------------------------------------------------

    def invite(self, account: str, now: float, random_bytes: Callable[[int], bytes],
               lifetime: float = INVITE_LIFETIME) -> str:  # fmt: skip
        """A one-time invite code for ``account`` (created if new)."""
        code = _token(random_bytes, 24)
        with self.engine.begin() as db:
            self._ensure_account(db, account, now)
            db.execute(invites.insert().values(code_hash=_hash(code), account=account, created=now,
                                               expires=now + lifetime))  # fmt: skip
        return code

    def _ensure_account(self, db: Any, account: str, now: float) -> None:
        row = db.execute(sa.select(accounts.c.revoked).where(accounts.c.name == account)).first()
        if row is None:
            db.execute(accounts.insert().values(name=account, created=now))
        elif row.revoked is not None:
            raise CredentialRefused(Refusal.REVOKED, f"account {account!r} is revoked")

    def redeem(self, code: str, public_key: bytes, name: str, now: float,
               random_bytes: Callable[[int], bytes]) -> Device:  # fmt: skip
        """Register a device with the invite's account; the invite is used up."""
        with self.engine.begin() as db:
            row = db.execute(sa.select(invites).where(invites.c.code_hash == _hash(code)).with_for_update()).first()
            if row is None:
                raise CredentialRefused(Refusal.BAD_PROOF, "unknown invite")
            if row.used is not None:
                raise CredentialRefused(Refusal.REPLAYED, "invite already used")
            if now >= row.expires:
                raise CredentialRefused(Refusal.EXPIRED, "invite expired")
            db.execute(invites.update().where(invites.c.code_hash == row.code_hash).values(used=now))
            return self._add_device(db, row.account, public_key, name, now, random_bytes)

    def _add_device(self, db: Any, account: str, public_key: bytes, name: str, now: float,
                    random_bytes: Callable[[int], bytes]) -> Device:  # fmt: skip
        if len(public_key) != 32:
            raise CredentialRefused(Refusal.MALFORMED, "a device key is 32 bytes of Ed25519 public key")
        device = Device(_token(random_bytes, 12), account, public_key, name[:200], now)
        db.execute(devices.insert().values(id=device.id, account=account, public_key=public_key, name=device.name,
                                           created=now))  # fmt: skip
        return device

    def provision_local(self, public_key: bytes, name: str, now: float,
                        random_bytes: Callable[[int], bytes]) -> Device:  # fmt: skip
        """The embedded relay's silent first use: the local account, this machine's device."""
        with self.engine.begin() as db:
            self._ensure_account(db, LOCAL_ACCOUNT, now)
            existing = db.execute(sa.select(devices).where(devices.c.public_key == public_key,
                                                           devices.c.revoked.is_(None))).first()  # fmt: skip
            if existing is not None:
                return Device(**existing._mapping)
            return self._add_device(db, LOCAL_ACCOUNT, public_key, name, now, random_bytes)

    # -- lookups and revocation ----------------------------------------------------------

    def device(self, device_id: str) -> Device | None:
        """The device if it and its account are not revoked."""
        query = (
            sa.select(devices)
            .join(accounts, accounts.c.name == devices.c.account)
            .where(devices.c.id == device_id, devices.c.revoked.is_(None), accounts.c.revoked.is_(None))
        )
        with self.engine.connect() as db:
            row = db.execute(query).first()
        return None if row is None else Device(**row._mapping)

    def revoke_device(self, device_id: str, now: float) -> bool:
        with self.engine.begin() as db:
            done = db.execute(devices.update().where(devices.c.id == device_id, devices.c.revoked.is_(None))
                              .values(revoked=now))  # fmt: skip
        return bool(done.rowcount)

    def revoke_account(self, account: str, now: float) -> bool:
        with self.engine.begin() as db:
            done = db.execute(accounts.update().where(accounts.c.name == account, accounts.c.revoked.is_(None))
                              .values(revoked=now))  # fmt: skip
            db.execute(devices.update().where(devices.c.account == account, devices.c.revoked.is_(None))
                       .values(revoked=now))  # fmt: skip
        return bool(done.rowcount)

    def list_accounts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(sa.select(accounts).order_by(accounts.c.name))]

    def list_devices(self, account: str | None = None) -> list[Device]:
        query = sa.select(devices).order_by(devices.c.created)
        if account is not None:
            query = query.where(devices.c.account == account)
        with self.engine.connect() as db:
            return [Device(**r._mapping) for r in db.execute(query)]
