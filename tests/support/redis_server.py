"""A real Redis server for tests: Debian's redis-server on a free 127.0.0.1 port, nothing saved to disk."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.conftest import UNIT, free_port, require, stop


@contextmanager
def redis_server(port: int | None = None) -> Iterator[str]:
    """Yield a ``redis://`` URL of a fresh server (on ``port``, default a free one); skip (fail under CI) without it."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server (Debian package redis-server)")
    assert binary is not None
    folder = Path(tempfile.mkdtemp(prefix="tether-redis-"))
    port = port or free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_timeout=UNIT)
        deadline = time.monotonic() + 10 * UNIT
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("redis-server did not start") from None
                time.sleep(0.02)  # polling a starting server: there is no event to wait on
        client.close()
        yield url
    finally:
        stop(process)
        shutil.rmtree(folder, ignore_errors=True)
