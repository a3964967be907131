"""The relay's doors: credentials at the WebSocket endpoints, and the account HTTP API.

WebSocket (docs/protocol.md section 1, "Credentials"): a host presents its token in the
``Authorization: Bearer`` header of the upgrade; a browser cannot set headers, so a
viewer sends ``{"type": "join", "token": ...}`` as its first text message within
``join_timeout`` seconds. Until the credential checks out, the connection holds no slot.
Once attached, each end is sent ``{"type": "credentials", "routing": ..., "expires_in": ...}``
(the host also gets ``join``, the viewer-join token for the session URL's fragment) and
renews with ``{"type": "renew"}`` before it expires.

HTTP: ``POST /v1/login`` (an invite code and a device public key: registers the device),
``POST /v1/initiate`` (a device's possession proof: a session-initiation token),
``POST /v1/logout`` (a proof: the device is revoked). Refusals are 4401 or HTTP 401/400,
counted by reason, logged without the token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from tether.auth import proof as proofs
from tether.auth.keys import load_public_raw
from tether.auth.tokens import Claims, Purpose, Refusal
from tether.errors import CredentialRefused
from tether.relay.admission import HOST, VIEWER, Credentials
from tether.relay.websocket import header

if TYPE_CHECKING:
    from tether.relay.app import RelayState

logger = logging.getLogger("tether.relay")
MAX_BODY = 16 * 1024
T = TypeVar("T")


def _refuse(relay: RelayState, exc: CredentialRefused, where: str) -> None:
    relay.refusals[exc.reason] += 1
    logger.info("credential refused at %s: %s", where, exc.reason, extra={"event": "refused", "reason": exc.reason})


async def presented(websocket: WebSocket, role: str, relay: RelayState) -> str | None:
    """The token an end presents (header for the host, first text message for a viewer)."""
    if role == HOST:
        scheme, _, token = (header(websocket, b"authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    try:
        async with asyncio.timeout(relay.join_timeout):
            message = await websocket.receive()
    except TimeoutError:
        return None
    text = message.get("text")
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "join" or not isinstance(data.get("token"), str):
        return None
    return str(data["token"])


def _attempt(relay: RelayState, where: str, call: Callable[[], T]) -> T | None:
    """``call()``, or None when it refuses a credential (counted, logged without the token)."""
    try:
        return call()
    except CredentialRefused as exc:
        _refuse(relay, exc, where)
        return None


def resumed(websocket: WebSocket, role: str) -> str | None:
    """The routing token a host coming back presents beside a fresh initiation token (``Tether-Resume``)."""
    if role != HOST:
        return None
    return (header(websocket, b"tether-resume") or "").strip() or None


async def check(
    relay: RelayState, role: str, token: str | None, session: str, resume: str | None = None
) -> Claims | None:
    """The claims of a good credential for this end, or None (counted, logged without the token).

    With relays sharing sessions (``ledger.py``), the session's credential state is read
    from the ledger first, and an initiation token another process used is refused here.
    """
    if token is None:
        relay.refusals["missing"] += 1
        return None
    where = f"{role} {session[:4]}…"
    await relay.ledger.load(relay.admission, session)
    claims = _attempt(relay, where, lambda: relay.admission.check(role, token, session, relay.clock(), resume))
    if claims is not None and claims.purpose == Purpose.INITIATE and await relay.ledger.seen(claims.nonce):
        _refuse(relay, CredentialRefused(Refusal.REPLAYED, "initiation token used before"), where)
        return None
    return claims


async def commit(relay: RelayState, role: str, claims: Claims, session: str) -> Credentials | None:
    """Record the end as attached and mint its credentials (shared through the ledger); None if refused."""
    where = f"{role} {session[:4]}…"
    now = relay.clock()
    if claims.purpose == Purpose.INITIATE and not await relay.ledger.use(claims.nonce, claims.expires, now):
        _refuse(relay, CredentialRefused(Refusal.REPLAYED, "initiation token used before"), where)
        return None
    await relay.ledger.load(relay.admission, session)
    given = _attempt(relay, where, lambda: relay.admission.commit(role, claims, session, relay.clock()))
    if given is not None:
        # A new registration (initiation) also dropped the viewer's routing token.
        roles = (HOST, VIEWER) if claims.purpose == Purpose.INITIATE else (role,)
        await relay.ledger.save(relay.admission, session, roles)
    return given


def credentials_message(relay: RelayState, credentials: Credentials) -> str:
    return json.dumps(credentials.to_json(relay.clock()), separators=(",", ":"))


async def renew(relay: RelayState, held: Claims) -> Credentials | None:
    await relay.ledger.load(relay.admission, held.session)
    renewed = _attempt(relay, "renewal", lambda: relay.admission.renew(held, relay.clock()))
    if renewed is not None:
        await relay.ledger.save(relay.admission, held.session, (held.role,))
    return renewed


async def end(relay: RelayState, session: str) -> None:
    """The session died with its host: so do its tokens, on every relay process."""
    relay.admission.end(session)
    await relay.ledger.end(relay.admission, session)


# -- HTTP: accounts and session initiation ---------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise CredentialRefused(Refusal.MALFORMED, "request too large")
    try:
        data = json.loads(raw)
    except ValueError:
        raise CredentialRefused(Refusal.MALFORMED, "not JSON") from None
    if not isinstance(data, dict):
        raise CredentialRefused(Refusal.MALFORMED, "not a JSON object")
    return data


def _origins(request: Request, relay: RelayState) -> set[str]:
    """The origins a proof may name: this request's own, and the configured public URL's."""
    origins = {f"{request.url.scheme}://{request.url.netloc}"}
    if relay.public_origin:
        origins.add(relay.public_origin)
    return origins


def _refused_response(relay: RelayState, exc: CredentialRefused, where: str) -> JSONResponse:
    _refuse(relay, exc, where)
    status = 400 if exc.reason == Refusal.MALFORMED else 401
    return JSONResponse({"error": exc.reason}, status_code=status)


async def login(request: Request) -> JSONResponse:
    """``{"invite", "public_key" (base64url, 32 bytes), "name"}`` -> ``{"device", "account"}``."""
    from tether.relay.app import relay_state

    relay = relay_state(request.app)
    try:
        data = await _body(request)
        if relay.store is None:
            raise CredentialRefused(Refusal.REVOKED, "this relay keeps no accounts")
        key = base64.urlsafe_b64decode(str(data.get("public_key", "")) + "==")
        invite, name = str(data.get("invite", "")), str(data.get("name", "device"))
        store = relay.store
        device = await asyncio.to_thread(store.redeem, invite, key, name, relay.clock(), relay.admission.random_bytes)
    except CredentialRefused as exc:
        return _refused_response(relay, exc, "login")
    except ValueError:
        return _refused_response(relay, CredentialRefused(Refusal.MALFORMED, "bad key"), "login")
    return JSONResponse({"device": device.id, "account": device.account})


async def _proven_device(request: Request, relay: RelayState) -> tuple[proofs.Proof, Any]:
    data = await _body(request)
    proof = proofs.Proof.from_json(data.get("proof"))
    if relay.store is None:
        raise CredentialRefused(Refusal.REVOKED, "this relay keeps no accounts")
    device = await asyncio.to_thread(relay.store.device, proof.device)
    if device is None:
        raise CredentialRefused(Refusal.REVOKED, "unknown or revoked device")
    return proof, load_public_raw(device.public_key)


async def initiate(request: Request) -> JSONResponse:
    """``{"proof": {...}}`` -> ``{"token", "expires_in"}``: a session-initiation token."""
    from tether.relay.app import relay_state

    relay = relay_state(request.app)
    try:
        proof, public = await _proven_device(request, relay)
        now = relay.clock()
        token, expires = relay.admission.initiate(proof, public, _origins(request, relay), now)
        if not await relay.ledger.use(proof.nonce, proof.time + proofs.PROOF_WINDOW, now):
            raise CredentialRefused(Refusal.REPLAYED, "proof seen before")
    except CredentialRefused as exc:
        return _refused_response(relay, exc, "initiate")
    return JSONResponse({"token": token, "expires_in": expires - now})


async def logout(request: Request) -> JSONResponse:
    """``{"proof": {...}}``: the proving device is revoked."""
    from tether.relay.app import relay_state

    relay = relay_state(request.app)
    try:
        proof, public = await _proven_device(request, relay)
        relay.admission.accept_proof(proof, public, _origins(request, relay), relay.clock())
        if not await relay.ledger.use(proof.nonce, proof.time + proofs.PROOF_WINDOW, relay.clock()):
            raise CredentialRefused(Refusal.REPLAYED, "proof seen before")
        assert relay.store is not None
        await asyncio.to_thread(relay.store.revoke_device, proof.device, relay.clock())
    except CredentialRefused as exc:
        return _refused_response(relay, exc, "logout")
    return JSONResponse({"revoked": proof.device})
