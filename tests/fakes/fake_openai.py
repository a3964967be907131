"""A fake OpenAI-compatible Chat Completions API on 127.0.0.1 speaking the real streaming format.

``POST /v1/chat/completions`` answers the next scripted step (see model_server.py). Its
``base_url`` ends in ``/v1``, as ``OPENAI_BASE_URL`` does. With ``"stream": true`` the
reply is ``chat.completion.chunk`` objects as server-sent ``data:`` lines::

    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}
    {"choices": [{"index": 0, "delta": {"content": "..."}, ...}]}                          (repeated)
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_...", "type": "function",
                                                         "function": {"name": "...", "arguments": ""}}]}}]}
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "..."}}]}}]}
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    {"choices": [], "usage": {"prompt_tokens": N, "completion_tokens": N, "total_tokens": N}}
                                                    (only with stream_options.include_usage)
    [DONE]

Every chunk also carries ``id``, ``object``, ``created``, ``model``,
``system_fingerprint`` (and ``usage: null`` when usage was asked for). Without
``stream`` the reply is one ``chat.completion``. Errors use the API's shape
``{"error": {"message", "type", "param", "code"}}``; an ``in_stream`` failure sends such
an object as a ``data:`` line after the first chunk. ``GET /v1/models`` lists the known
models. With ``api_key`` set, a request without ``Authorization: Bearer <key>`` gets a
401; with ``models`` set, an unknown model gets a 404 ``model_not_found``.
"""

from __future__ import annotations

import asyncio
import json
import time
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

ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "overloaded"),
}


def error_body(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
    """The API's error object."""
    kind, code = ERRORS.get(status, ("server_error", None))
    return {"error": {"message": message, "type": error_type or kind, "param": None, "code": code}}


class FakeOpenAI(FakeModelServer):
    """The fake Chat Completions API (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._completion_ids = Counter("chatcmpl-fake")
        self._call_ids = Counter("call_fake")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self._completions, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
        ]

    async def _list_models(self, request: Request) -> Response:
        await self.record(request)
        names = sorted(self.models or {"fake-model"})
        return self.json({"object": "list", "data": [{"id": n, "object": "model", "owned_by": "fake"} for n in names]})

    def _refusal(self, recorded: RecordedRequest) -> Response | None:
        if self.api_key is not None and recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.json(error_body(401, "Incorrect API key provided."), 401)
        model = recorded.body.get("model") if isinstance(recorded.body, dict) else None
        if self.models is not None and model not in self.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return self.json(error_body(404, message), 404)
        return None

    async def _completions(self, request: Request) -> Response:
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
            return self.json(self._completion(step, body))
        return self.streaming(self._chunks(step, body))

    def _calls(self, turn: Turn) -> list[tuple[str, str, str]]:
        return [(c.id or self._call_ids.next(), c.name, json.dumps(c.arguments)) for c in turn.tool_calls]

    def _usage(self, turn: Turn, body: Any) -> dict[str, int]:
        inputs = turn.input_tokens if turn.input_tokens is not None else estimate_tokens(body)
        calls = [(c.name, c.arguments) for c in turn.tool_calls]
        outputs = turn.output_tokens if turn.output_tokens is not None else estimate_tokens([turn.text, calls])
        return {"prompt_tokens": inputs, "completion_tokens": outputs, "total_tokens": inputs + outputs}

    def _finish(self, turn: Turn) -> str:
        return turn.stop_reason or ("tool_calls" if turn.tool_calls else "stop")

    def _completion(self, turn: Turn, body: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": turn.text or None, "refusal": None}
        calls = self._calls(turn)
        if calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
            ]
        return {
            "id": self._completion_ids.next(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish(turn)}],
            "usage": self._usage(turn, body),
        }

    async def _chunks(self, step: Turn | Failure, body: Any) -> AsyncIterator[str]:
        turn = step if isinstance(step, Turn) else Turn()
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        head = {
            "id": self._completion_ids.next(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            data: dict[str, Any] = {
                **head,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if with_usage:
                data["usage"] = None
            return sse(data)

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        if isinstance(step, Failure):
            yield sse(error_body(step.status, step.message, step.error_type))
            return
        if turn.text:
            for piece in pieces(turn.text, turn.chunk_size):
                await asyncio.sleep(turn.delay)
                yield chunk({"content": piece})
        if turn.hang:
            await self.hold()
            return
        for index, (call_id, name, arguments) in enumerate(self._calls(turn)):
            opening = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
            yield chunk({"tool_calls": [opening]})
            for piece in pieces(arguments, turn.chunk_size):
                await asyncio.sleep(turn.delay)
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, self._finish(turn))
        if with_usage:
            yield sse({**head, "choices": [], "usage": self._usage(turn, body)})
        yield sse("[DONE]")
