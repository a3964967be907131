"""Relays that share one PostgreSQL start together: the account store's migrations do not race."""

from __future__ import annotations

import threading

from tests.support.postgres import postgres_server
from tether.relay.accounts import AccountStore


def test_relays_starting_at_once_on_a_new_database_all_migrate() -> None:
    """Four stores migrating a fresh database at the same moment all succeed, and the schema is there once."""
    with postgres_server() as url:
        stores = [AccountStore(url) for _ in range(4)]
        start = threading.Barrier(len(stores))
        failures: list[BaseException] = []

        def migrate(store: AccountStore) -> None:
            start.wait()
            try:
                store.migrate()
            except BaseException as exc:  # collected and asserted below
                failures.append(exc)

        threads = [threading.Thread(target=migrate, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            assert [] == failures
            assert [] == stores[0].list_accounts()
        finally:
            for store in stores:
                store.close()
