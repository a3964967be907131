"""The host's rules for reaching a relay: which addresses may be plain http, which CA verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.errors import InsecureRelay, TlsUnusable
from tether.host import tls


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8787",
        "ws://127.0.0.1/v1/host/x",
        "http://127.45.6.7",
        "http://[::1]:8787",
        "http://localhost:8787",
        "http://LOCALHOST.",
        "https://relay.example.org",
        "wss://203.0.113.9:443",
    ],
)
def test_loopback_or_tls_relays_are_allowed(url: str) -> None:
    """Plain text only to this machine; TLS to anywhere."""
    tls.check_relay_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.10",
        "ws://relay.example.org",
        "http://[2001:db8::1]",
        "http://localhost.example.org",
        "http://0.0.0.0",
    ],
)
def test_plain_relays_elsewhere_are_refused(url: str) -> None:
    """A plain http:// or ws:// relay off this machine is an InsecureRelay, whose advice names https and tunnels."""
    with pytest.raises(InsecureRelay) as refused:
        tls.check_relay_url(url)
    assert "https://" in refused.value.advice() and "--tunnel" in refused.value.advice()


def test_a_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    """--relay-ca naming no usable PEM file is a TlsUnusable that names the file."""
    with pytest.raises(TlsUnusable, match=r"nope\.pem"):
        tls.client_context(tmp_path / "nope.pem")


def test_the_relay_ca_in_use_wins_over_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """use_relay_ca (the --relay-ca flag) is what relay_ca returns; unset, relay.ca from the config is."""
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path))
    (tmp_path / "config.toml").write_text('[relay]\nca = "/etc/tether/ca.pem"\n')
    assert Path("/etc/tether/ca.pem") == tls.relay_ca()
    tls.use_relay_ca(tmp_path / "flag.pem")
    try:
        assert tmp_path / "flag.pem" == tls.relay_ca()
    finally:
        tls.use_relay_ca(None)
