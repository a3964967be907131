"""A fake Gemini API (Generative Language API, v1beta) on 127.0.0.1 speaking its real format.

``POST /v1beta/models/<model>:streamGenerateContent?alt=sse`` answers the next scripted
step (see model_server.py) as server-sent ``data:`` lines, each a ``GenerateContentResponse``::

    {"candidates": [{"content": {"role": "model", "parts": [{"text": "..."}]}, "index": 0}],
     "modelVersion": "<model>", "responseId": "..."}                                       (repeated)
    {"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": "...", "args": {...}}}]},
                     "finishReason": "STOP", "index": 0}],
     "usageMetadata": {"promptTokenCount": N, "candidatesTokenCount": N, "totalTokenCount": N}, ...}

``POST /v1beta/models/<model>:generateContent`` answers the same step as one response.
``:countTokens`` estimates. Errors use the API's shape
``{"error": {"code", "message", "status"}}``. Point ``GOOGLE_GEMINI_BASE_URL`` at
``base_url`` (the SDK appends ``/v1beta/models/...``). Conversation requests carry
``contents`` (not ``messages``); ``model_requests()`` lists them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.model_server import Failure, FakeModelServer, RecordedRequest, Turn, estimate_tokens, pieces, sse

STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
          500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip


def error_body(status: int, message: str) -> dict[str, Any]:
    """The API's error object."""
    return {"error": {"code": status, "message": message, "status": STATUS.get(status, "INTERNAL")}}


class FakeGemini(FakeModelServer):
    """The fake Gemini API (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(1)

    def routes(self) -> list[Route]:
        return [Route("/v1beta/models/{target:path}", self._models, methods=["POST"])]

    def model_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if isinstance(r.body, dict) and "contents" in r.body
                and not r.path.endswith(":countTokens")]  # fmt: skip

    async def _models(self, request: Request) -> Response:
        recorded = await self.record(request)
        model, _, method = request.path_params["target"].partition(":")
        if method == "countTokens":
            return self.json({"totalTokens": estimate_tokens(recorded.body)})
        if method not in ("generateContent", "streamGenerateContent"):
            return self.json(error_body(404, f"fake server: no method {method!r}"), 404)
        step = self.next_step(recorded)
        if step is None:
            return self.json(error_body(400, "fake server: the script has no turn left for this request"), 400)
        if isinstance(step, Failure) and not step.in_stream:
            headers = {"retry-after": step.retry_after} if step.retry_after is not None else {}
            return self.json(error_body(step.status, step.message), step.status, headers)
        if method == "generateContent":
            assert isinstance(step, Turn), "in_stream failures need streamGenerateContent"
            return self.json(self._response(model, [self._parts(step)], step, recorded.body, final=True))
        return self.streaming(self._events(model, step, recorded.body))

    def _parts(self, turn: Turn, text: str | None = None) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"text": turn.text if text is None else text}] if (text or turn.text) else []
        if text is None:
            parts += [{"functionCall": {"name": c.name, "args": c.arguments}} for c in turn.tool_calls]
        return parts

    def _response(self, model: str, parts: list[list[dict[str, Any]]], turn: Turn, body: Any,
                  final: bool) -> dict[str, Any]:  # fmt: skip
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts[0]}, "index": 0}
        data: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
        data["responseId"] = f"fake-{next(self._ids)}"
        if final:
            candidate["finishReason"] = turn.stop_reason or "STOP"
            inputs = turn.input_tokens if turn.input_tokens is not None else estimate_tokens(body)
            calls = [(c.name, c.arguments) for c in turn.tool_calls]
            outputs = turn.output_tokens if turn.output_tokens is not None else estimate_tokens([turn.text, calls])
            data["usageMetadata"] = {"promptTokenCount": inputs, "candidatesTokenCount": outputs,
                                     "totalTokenCount": inputs + outputs}  # fmt: skip
        return data

    async def _events(self, model: str, step: Turn | Failure, body: Any) -> AsyncIterator[str]:
        if isinstance(step, Failure):
            yield sse(self._response(model, [[{"text": ""}]], Turn(), body, final=False))
            yield sse(error_body(step.status, step.message))
            return
        turn = step
        # The last chunk carries the finish reason and usage, with the last text and the calls (as the API does).
        texts = pieces(turn.text, turn.chunk_size) if turn.text else []
        last = [] if turn.hang or not texts else [{"text": texts.pop()}]
        for piece in texts:
            await asyncio.sleep(turn.delay)
            yield sse(self._response(model, [[{"text": piece}]], turn, body, final=False))
        if turn.hang:
            await self.hold()
            return
        calls = [{"functionCall": {"name": c.name, "args": c.arguments}} for c in turn.tool_calls]
        yield sse(self._response(model, [last + calls], turn, body, final=True))
