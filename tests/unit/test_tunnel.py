"""Tunnels, the pure part: what cloudflared and tailscale print, the commands, the loopback notice.

The sample output is in the shape the real tools print. cloudflared: its quick tunnel log
(cmd/cloudflared/tunnel/quick_tunnel.go prints the address in an ``AsciiBox``; a user's
log as published, 2023-01-16, version 2022.12.1). tailscale: ``tailscale serve`` in the
foreground, tailscale 1.52+ (cmd/tailscale/cli/serve_v2.go ``messageForPort``), and the
"Serve is not enabled on your tailnet" answer of a tailnet without HTTPS.
"""

from __future__ import annotations

import pytest

from tether.errors import RelayConflict, TunnelFailed
from tether.host.tunnel import (
    TOOLS,
    CloudflaredOutput,
    TailscaleOutput,
    choose_relay,
    exit_description,
    is_loopback,
    reach_note,
    tool,
)

CLOUDFLARED_LOG = """\
2023-01-16T08:32:54Z INF Thank you for trying Cloudflare Tunnel. Doing so, without a Cloudflare account, is a quick \
way to experiment and try it out. However, be aware that these account-less Tunnels have no uptime guarantee. If you \
intend to use Tunnels in production you should use a pre-created named tunnel by following: \
https://developers.cloudflare.com/cloudflare-one/connections/connect-apps
2023-01-16T08:32:54Z INF Requesting new quick Tunnel on trycloudflare.com...
2023-01-16T08:32:58Z INF +--------------------------------------------------------------------------------------------+
2023-01-16T08:32:58Z INF |  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |
2023-01-16T08:32:58Z INF |  https://oklahoma-solo-younger-truck.trycloudflare.com                                     |
2023-01-16T08:32:58Z INF +--------------------------------------------------------------------------------------------+
2023-01-16T08:32:58Z INF Cannot determine default configuration path. No file [config.yml config.yaml] in \
[~/.cloudflared ~/.cloudflare-warp ~/cloudflare-warp /etc/cloudflared /usr/local/etc/cloudflared]
2023-01-16T08:32:58Z INF Version 2022.12.1
2023-01-16T08:32:58Z INF Settings: map[ha-connections:1 protocol:quic url:http://127.0.0.1:8787]
2023-01-16T08:32:58Z INF Generated Connector ID: a6c7cb67-725e-4f57-a134-a7e58278c603
2023-01-16T08:32:59Z INF Registered tunnel connection connIndex=0 \
connection=bb527b3a-8a27-467b-9fca-84972898be5c event=0 ip=198.41.192.7 location=ams01 protocol=quic
"""

TAILSCALE_FOREGROUND = """\
Available within your tailnet:

https://laptop.tail1234.ts.net/
|-- proxy http://127.0.0.1:8787

Press Ctrl+C to exit.
"""

TAILSCALE_NOT_ENABLED = """\
Serve is not enabled on your tailnet.
To enable, visit:

         https://login.tailscale.com/f/serve?node=nABC123
"""


def fed(output: CloudflaredOutput | TailscaleOutput, text: str) -> CloudflaredOutput | TailscaleOutput:
    """``output`` after each line of ``text``."""
    for line in text.splitlines(keepends=True):
        output.feed(line)
    return output


def test_cloudflared_address_is_the_one_in_the_box() -> None:
    """The trycloudflare address inside the box is the address; the disclaimer's links are not."""
    output = fed(CloudflaredOutput(), CLOUDFLARED_LOG.split("Cannot determine")[0])
    assert ("https://oklahoma-solo-younger-truck.trycloudflare.com", False) == (output.address, output.ready)


def test_cloudflared_is_ready_once_a_connection_registered() -> None:
    """The quick tunnel carries traffic after cloudflared logs its first registered connection."""
    output = fed(CloudflaredOutput(), CLOUDFLARED_LOG)
    assert ("https://oklahoma-solo-younger-truck.trycloudflare.com", True) == (output.address, output.ready)


def test_cloudflared_registration_before_an_address_means_nothing() -> None:
    """A connection line without an address first (a named tunnel from a config file) is not a quick tunnel."""
    output = fed(CloudflaredOutput(), CLOUDFLARED_LOG.splitlines()[-1] + "\n")
    assert (None, False) == (output.address, output.ready)


def test_tailscale_address_follows_the_available_heading() -> None:
    """``tailscale serve`` in the foreground: the https line under "Available within your tailnet:"."""
    output = fed(TailscaleOutput(), TAILSCALE_FOREGROUND)
    assert ("https://laptop.tail1234.ts.net", True) == (output.address, output.ready)


def test_tailscale_funnel_heading_counts_too() -> None:
    """A node whose 443 is funnelled says "Available on the internet:"; the address is read the same way."""
    output = fed(TailscaleOutput(), TAILSCALE_FOREGROUND.replace("within your tailnet", "on the internet"))
    assert "https://laptop.tail1234.ts.net" == output.address


def test_tailscale_enable_link_is_not_an_address() -> None:
    """The link to enable HTTPS on the tailnet is no address, and it is what was printed last."""
    output = fed(TailscaleOutput(), TAILSCALE_NOT_ENABLED)
    assert (None, False, "https://login.tailscale.com/f/serve?node=nABC123") == (
        output.address,
        output.ready,
        output.last,
    )


def test_last_is_the_last_line_with_text_controls_made_visible() -> None:
    """Blank lines are skipped, colour codes dropped, other controls shown rather than obeyed."""
    output = fed(CloudflaredOutput(), "\x1b[90m2024-05-01T10:00:00Z\x1b[0m ERR failed\x07 to connect\n\n   \n")
    assert "2024-05-01T10:00:00Z ERR failed␇ to connect" == output.last


def test_commands_publish_the_local_url() -> None:
    """cloudflared runs a quick tunnel to the URL; tailscale serves it on 443 in the foreground."""
    local = "http://127.0.0.1:8787"
    assert ("cloudflared", "tunnel", "--no-autoupdate", "--url", local) == TOOLS["cloudflared"].command(local)
    assert ("tailscale", "serve", "--https=443", local) == TOOLS["tailscale"].command(local)


def test_an_unknown_tool_is_refused_with_the_two_names() -> None:
    """Only cloudflared and tailscale are tunnels; anything else names both."""
    with pytest.raises(TunnelFailed, match="cloudflared or tailscale"):
        tool("ngrok")


@pytest.mark.parametrize(
    ("flags", "config", "expected"),
    [
        ((None, None), (None, None), (None, None)),
        ((None, None), ("https://relay.example.org", None), ("https://relay.example.org", None)),
        ((None, None), (None, "tailscale"), (None, "tailscale")),
        (("https://mine.example", None), (None, "tailscale"), ("https://mine.example", None)),
        ((None, "cloudflared"), ("https://relay.example.org", None), (None, "cloudflared")),
        ((None, "cloudflared"), (None, "tailscale"), (None, "cloudflared")),
    ],
)
def test_flags_choose_before_the_config(
    flags: tuple[str | None, str | None], config: tuple[str | None, str | None], expected: tuple[str | None, str | None]
) -> None:
    """A flag (--relay or --tunnel) wins over either config key; without flags the config decides."""
    assert expected == choose_relay(*flags, *config)


def test_a_relay_and_a_tunnel_together_are_refused() -> None:
    """--relay with --tunnel, or relay.url with remote.tunnel, is one or the other."""
    with pytest.raises(RelayConflict, match="--relay"):
        choose_relay("https://relay.example.org", "cloudflared", None, None)
    with pytest.raises(RelayConflict, match=r"relay\.url"):
        choose_relay(None, None, "https://relay.example.org", "tailscale")


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8787/s/abc", True),
        ("http://127.8.9.10/s/abc", True),
        ("http://localhost:8787/s/abc", True),
        ("http://relay.localhost/s/abc", True),
        ("http://[::1]:8787/s/abc", True),
        ("https://oklahoma-solo-younger-truck.trycloudflare.com/s/abc", False),
        ("https://laptop.tail1234.ts.net/s/abc", False),
        ("http://192.168.1.20:8787/s/abc", False),
        ("not a url", False),
    ],
)
def test_loopback_urls(url: str, loopback: bool) -> None:
    """127.0.0.0/8, ::1 and localhost open on this machine only; any other host may be reachable."""
    assert loopback == is_loopback(url)


def test_the_loopback_note_names_both_ways_to_a_phone() -> None:
    """A loopback URL gets one line naming the tunnels and a relay of one's own; a public one gets none."""
    note = reach_note("http://127.0.0.1:8787/s/abc")
    assert note is not None and "\n" not in note
    assert all(part in note for part in ("this machine only", "--tunnel cloudflared", "tailscale", "docs/deploy.md"))
    assert reach_note("https://oklahoma-solo-younger-truck.trycloudflare.com/s/abc") is None


@pytest.mark.parametrize(("code", "text"), [(0, "exit status 0"), (1, "exit status 1"), (-9, "killed by SIGKILL")])
def test_exit_description(code: int, text: str) -> None:
    """Exit statuses read as statuses, deaths by signal by the signal's name."""
    assert text == exit_description(code)
