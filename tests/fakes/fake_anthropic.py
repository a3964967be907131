"""A fake Anthropic Messages API on 127.0.0.1 speaking the real streaming format.

``POST /v1/messages`` (any query, e.g. Claude Code's ``?beta=true``) answers the next
scripted step (see model_server.py). With ``"stream": true`` the reply is server-sent
events exactly as the API sends them::

    event: message_start        {"type": "message_start", "message": {..., "usage": {"input_tokens": N, ...}}}
    event: ping                 {"type": "ping"}
    event: content_block_start  {"index": 0, "content_block": {"type": "text", "text": ""}}
    event: content_block_delta  {"index": 0, "delta": {"type": "text_delta", "text": "..."}}     (repeated)
    event: content_block_stop   {"index": 0}
    event: content_block_start  {"index": 1, "content_block": {"type": "tool_use", "id", "name", "input": {}}}
    event: content_block_delta  {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "..."}}
    event: content_block_stop   {"index": 1}
    event: message_delta        {"delta": {"stop_reason": "tool_use", ...}, "usage": {"output_tokens": N}}
    event: message_stop         {"type": "message_stop"}

Without ``stream`` the same reply comes as one ``message`` object. Errors use the API's
shape ``{"type": "error", "error": {"type": "rate_limit_error", "message": ...}}`` with
``retry-after`` when scripted; an ``in_stream`` failure sends ``event: error`` after
``message_start``. ``HEAD /`` answers 200 (Claude Code probes it), ``POST
/v1/messages/count_tokens`` an estimate, ``GET /v1/models`` the known models. With
``api_key`` set, a request without that ``x-api-key`` (or bearer token) gets a 401; with
``models`` set, an unknown model gets a 404 ``not_found_error``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.model_server import (
    Counter,
    Failure,
    FakeModelServer,
    RecordedRequest,
    Turn,
    estimate_tokens,
    pieces,
    sse,
)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    """The API's error object."""
    return {"type": "error", "error": {"type": error_type or ERROR_TYPES.get(status, "api_error"), "message": message}}


class FakeAnthropic(FakeModelServer):
    """The fake Messages API (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._message_ids = Counter("msg_fake")
        self._tool_ids = Counter("toolu_fake")

    def routes(self) -> list[Route]:
        return [
            Route("/", self._probe, methods=["GET", "HEAD"]),
            Route("/v1/messages", self._messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
        ]

    async def _probe(self, request: Request) -> Response:
        await self.record(request)
        return Response(status_code=200)

    async def _list_models(self, request: Request) -> Response:
        await self.record(request)
        names = sorted(self.models or {"claude-fake"})
        data = [{"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"} for n in names]
        return self.json({"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]})

    async def _count_tokens(self, request: Request) -> Response:
        recorded = await self.record(request)
        return self.json({"input_tokens": estimate_tokens(recorded.body)})

    def _refusal(self, recorded: RecordedRequest) -> Response | None:
        headers = recorded.headers
        if self.api_key is not None:
            given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
            if given != self.api_key:
                return self.json(error_body(401, "invalid x-api-key"), 401)
        model = recorded.body.get("model") if isinstance(recorded.body, dict) else None
        if self.models is not None and model not in self.models:
            return self.json(error_body(404, f"model: {model}"), 404)
        return None

    async def _messages(self, request: Request) -> Response:
        recorded = await self.record(request)
        refusal = self._refusal(recorded)
        if refusal is not None:
            return refusal
        step = self.next_step(recorded)
        if step is None:
            return self.json(error_body(400, "fake server: the script has no turn left for this request"), 400)
        body = recorded.body
        if isinstance(step, Failure) and not step.in_stream:
            headers = {"retry-after": step.retry_after} if step.retry_after is not None else {}
            return self.json(error_body(step.status, step.message, step.error_type), step.status, headers)
        if not body.get("stream"):
            assert isinstance(step, Turn), "in_stream failures need stream: true"
            return self.json(self._message(step, body))
        return self.streaming(self._events(step, body))

    def _calls(self, turn: Turn) -> list[tuple[str, str, dict[str, Any]]]:
        return [(c.id or self._tool_ids.next(), c.name, c.arguments) for c in turn.tool_calls]

    def _usage(self, turn: Turn, body: Any) -> tuple[int, int]:
        inputs = turn.input_tokens if turn.input_tokens is not None else estimate_tokens(body)
        calls = [(c.name, c.arguments) for c in turn.tool_calls]
        outputs = turn.output_tokens if turn.output_tokens is not None else estimate_tokens([turn.text, calls])
        return inputs, outputs

    def _stop_reason(self, turn: Turn) -> str:
        return turn.stop_reason or ("tool_use" if turn.tool_calls else "end_turn")

    def _message(self, turn: Turn, body: Any) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
        content += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in self._calls(turn)]
        inputs, outputs = self._usage(turn, body)
        return {
            "id": self._message_ids.next(),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": self._stop_reason(turn),
            "stop_sequence": None,
            "usage": {"input_tokens": inputs, "output_tokens": outputs},
        }

    async def _events(self, step: Turn | Failure, body: Any) -> AsyncIterator[str]:
        turn = step if isinstance(step, Turn) else Turn()
        inputs, outputs = self._usage(turn, body)
        message = {
            "id": self._message_ids.next(),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": inputs,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        }
        yield sse({"type": "message_start", "message": message}, "message_start")
        yield sse({"type": "ping"}, "ping")
        if isinstance(step, Failure):
            yield sse(error_body(step.status, step.message, step.error_type), "error")
            return
        index = 0
        if turn.text:
            opening = {"type": "text", "text": ""}
            yield sse({"type": "content_block_start", "index": index, "content_block": opening}, "content_block_start")
            for piece in pieces(turn.text, turn.chunk_size):
                await asyncio.sleep(turn.delay)
                delta = {"type": "text_delta", "text": piece}
                yield sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
            if turn.hang:
                await self.hold()
                return
            yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")
            index += 1
        elif turn.hang:
            await self.hold()
            return
        for tool_id, name, arguments in self._calls(turn):
            block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
            yield sse({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")
            # The API opens every tool input with an empty piece, then streams the JSON.
            for piece in ["", *pieces(json.dumps(arguments), turn.chunk_size)]:
                await asyncio.sleep(turn.delay)
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
            yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")
            index += 1
        stop = {"stop_reason": self._stop_reason(turn), "stop_sequence": None}
        yield sse({"type": "message_delta", "delta": stop, "usage": {"output_tokens": outputs}}, "message_delta")
        yield sse({"type": "message_stop"}, "message_stop")
