"""A standalone relay's JSON logs (TETHER_RELAY_LOG_FORMAT=json): events, and never a secret or a frame.

Secrets a relay sees: session-initiation and routing tokens (the host's Authorization
header, renewals), viewer-join tokens (a viewer's first message), the operator token;
and the content of frames (opaque, but content all the same). None may reach its log.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import websockets

from tests.conftest import UNIT
from tests.integration.relay_process import OPERATOR_TOKEN, control, open_host, open_viewer, relay_process


async def test_json_logs_carry_events_and_no_secret_or_content(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """Every relay line is a JSON object; attach, detach and refusals show; no token, join link or frame does."""
    env = tether_env | {"TETHER_RELAY_LOG_FORMAT": "json"}
    marker = secrets.token_hex(16)
    with relay_process(tmp_path, env) as relay:
        session_id, host, join = await open_host(relay)
        viewer = await open_viewer(relay, session_id, join)
        await control(host, "peer")
        await viewer.send(marker.encode())
        await host.send(f"reply {marker}".encode())
        await host.send(json.dumps({"type": "renew"}))
        routing = (await control(host, "credentials"))["routing"]
        await viewer.close()
        await host.close()
        used = relay.initiation_token()
        first = await websockets.connect(
            f"{relay.ws_url}/v1/host/{secrets.token_urlsafe(16)}",
            additional_headers={"Authorization": f"Bearer {used}"},
        )
        await control(first, "credentials")
        replay = await websockets.connect(
            f"{relay.ws_url}/v1/host/{secrets.token_urlsafe(16)}",
            additional_headers={"Authorization": f"Bearer {used}"},
        )
        async with httpx.AsyncClient(timeout=5 * UNIT) as client:
            await client.get(f"{relay.url}/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            await client.get(f"{relay.url}/s/{session_id}?k=not-a-secret-but-a-query")
        await replay.wait_closed()
        await first.close()
        await _round_trip(relay.ws_url)  # everything above has been logged once this is
        log = relay.stderr()
    lines = [line for line in log.splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    assert {"attached", "detached", "refused"} <= {event.get("event") for event in events}
    assert {"replayed"} <= {event.get("reason") for event in events if event.get("event") == "refused"}
    for secret in (marker, join, routing, used, OPERATOR_TOKEN, session_id):
        assert secret not in log


async def _round_trip(ws_url: str) -> None:
    bad = await websockets.connect(f"{ws_url}/v1/host/{secrets.token_urlsafe(16)}")
    await bad.wait_closed()
