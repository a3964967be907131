"""A real PostgreSQL server for tests: Debian's binaries, a fresh cluster in a temporary folder.

Started on a free 127.0.0.1 port and stopped at the end. PostgreSQL refuses to run as
root, so under root (CI) the cluster belongs to the ``postgres`` user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import UNIT, free_port, require


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a ``postgresql://`` URL of a fresh database; skip (fail under CI) without PostgreSQL."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    require(initdb is not None and pg_ctl is not None, "PostgreSQL server binaries (Debian package postgresql)")
    assert initdb is not None and pg_ctl is not None
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            require(False, "a postgres system user to run PostgreSQL as (Debian package postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="tether-pg-"))
    data = folder / "data"
    port = free_port()

    def run(*argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if user is not None else []
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=60 * UNIT)

    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    try:
        run(initdb, "-D", str(data), "-U", "tether", "--auth=trust", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
        run(pg_ctl, "-D", str(data), "-o", options, "-w", "-t", str(int(60 * UNIT)), "-l", str(folder / "log"),
            "start")  # fmt: skip
        try:
            yield f"postgresql://tether@127.0.0.1:{port}/postgres"
        finally:
            run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
