"""`tether relay serve --public-url`: the base of every URL a relay gives out."""

from __future__ import annotations

import pytest

from tether.relay.config import RelayConfig, relay_public_base


def test_the_public_url_is_the_base_without_a_trailing_slash() -> None:
    """A public URL (with or without a path) is used as given, minus a trailing slash."""
    assert "https://relay.example.org" == relay_public_base(RelayConfig(public_url="https://relay.example.org/"))
    assert "https://example.org/tether" == relay_public_base(RelayConfig(public_url="https://example.org/tether/"))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8787"),
        ("0.0.0.0", "http://127.0.0.1:8787"),
        ("::1", "http://[::1]:8787"),
        ("::", "http://[::1]:8787"),
        ("relay.lan", "http://relay.lan:8787"),
    ],
)
def test_without_a_public_url_the_base_is_where_it_listens(host: str, expected: str) -> None:
    """No public URL: the relay's own address (an any-address reads as this machine's loopback)."""
    assert expected == relay_public_base(RelayConfig(host=host, port=8787))


def test_a_relay_serving_tls_itself_gives_out_https() -> None:
    """With --tls-cert and no public URL, the base is https on the address it listens on."""
    config = RelayConfig(host="relay.lan", port=8443, tls_cert="cert.pem", tls_key="key.pem")
    assert "https://relay.lan:8443" == relay_public_base(config)


@pytest.mark.parametrize(
    "url",
    ["relay.example.org", "ftp://relay.example.org", "https://", "https://relay.example.org/?x=1", "https://r.org/#f"],
)
def test_a_public_url_must_be_a_plain_http_or_https_base(url: str) -> None:
    """No scheme, another scheme, no host, a query or a fragment: refused when the config is made."""
    with pytest.raises(ValueError, match="public URL"):
        RelayConfig(public_url=url)
