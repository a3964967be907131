"""A fake OpenAI Responses API on 127.0.0.1 speaking its real streaming format.

``POST /v1/responses`` answers the next scripted step (see model_server.py). With
``"stream": true`` the reply is typed server-sent events, in order::

    event: response.created                {"type", "sequence_number", "response": {"id", "status": "in_progress", ...}}
    event: response.output_item.added      {"output_index", "item": {"type": "message", "id", "role": "assistant", ...}}
    event: response.output_text.delta      {"item_id", "output_index", "content_index": 0, "delta": "..."}  (repeated)
    event: response.output_item.done       {"output_index", "item": {... "content": [{"type": "output_text", "text"}]}}
    event: response.output_item.added      {"output_index", "item": {"type": "function_call", "call_id", "name", ...}}
    event: response.function_call_arguments.delta  {"item_id", "output_index", "delta": "..."}     (repeated)
    event: response.output_item.done       {"output_index", "item": {"type": "function_call", "arguments": "..."}}
    event: response.completed              {"response": {"id", "status": "completed", "output": [...], "usage": {...}}}

A scripted tool call whose arguments hold only ``input`` (a string) is sent as a
``custom_tool_call`` (the freeform tools, such as Codex's ``apply_patch``). Without
``stream`` the reply is the completed response object. Errors use the API's shape
``{"error": {"message", "type", "param", "code"}}``. ``base_url`` ends in ``/v1``.
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

from tests.fakes.fake_openai import error_body
from tests.fakes.model_server import (
    Counter,
    Failure,
    FakeModelServer,
    RecordedRequest,
    ScriptedCall,
    Turn,
    estimate_tokens,
    pieces,
)


class FakeResponses(FakeModelServer):
    """The fake Responses API (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._response_ids = Counter("resp_fake")
        self._item_ids = Counter("item_fake")
        self._call_ids = Counter("call_fake")
        self._current = ""  # the id of the response being sent

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def routes(self) -> list[Route]:
        return [Route("/v1/responses", self._responses, methods=["POST"])]

    def model_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if isinstance(r.body, dict) and "input" in r.body]

    async def _responses(self, request: Request) -> Response:
        recorded = await self.record(request)
        step = self.next_step(recorded)
        if step is None:
            return self.json(error_body(400, "fake server: the script has no turn left for this request"), 400)
        if isinstance(step, Failure) and not step.in_stream:
            headers = {"retry-after": step.retry_after} if step.retry_after is not None else {}
            return self.json(error_body(step.status, step.message, step.error_type), step.status, headers)
        body = recorded.body
        if not body.get("stream"):
            assert isinstance(step, Turn), "in_stream failures need stream: true"
            self._current = self._response_ids.next()
            return self.json(self._response(body, "completed", self._items(step), step))
        return self.streaming(self._events(step, body))

    def _call_item(self, call: ScriptedCall) -> dict[str, Any]:
        call_id = call.id or self._call_ids.next()
        if set(call.arguments) == {"input"} and isinstance(call.arguments["input"], str):
            return {"type": "custom_tool_call", "id": self._item_ids.next(), "call_id": call_id, "name": call.name,
                    "input": call.arguments["input"], "status": "completed"}  # fmt: skip
        return {"type": "function_call", "id": self._item_ids.next(), "call_id": call_id, "name": call.name,
                "arguments": json.dumps(call.arguments), "status": "completed"}  # fmt: skip

    def _message(self, text: str) -> dict[str, Any]:
        return {"type": "message", "id": self._item_ids.next(), "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip

    def _items(self, turn: Turn) -> list[dict[str, Any]]:
        return ([self._message(turn.text)] if turn.text else []) + [self._call_item(c) for c in turn.tool_calls]

    def _response(self, body: Any, status: str, output: list[dict[str, Any]], turn: Turn | None) -> dict[str, Any]:
        response: dict[str, Any] = {"id": self._current, "object": "response", "status": status,
                                    "created_at": int(time.time()), "model": body.get("model"), "output": output,
                                    "usage": None}  # fmt: skip
        if turn is not None:
            inputs = turn.input_tokens if turn.input_tokens is not None else estimate_tokens(body)
            outputs = turn.output_tokens if turn.output_tokens is not None else estimate_tokens(output)
            response["usage"] = {"input_tokens": inputs, "output_tokens": outputs, "total_tokens": inputs + outputs,
                                 "input_tokens_details": {"cached_tokens": 0},
                                 "output_tokens_details": {"reasoning_tokens": 0}}  # fmt: skip
        return response

    async def _events(self, step: Turn | Failure, body: Any) -> AsyncIterator[str]:
        sequence = iter(range(1_000_000))
        self._current = self._response_ids.next()

        def event(kind: str, **fields: Any) -> str:
            data = {"type": kind, "sequence_number": next(sequence), **fields}
            return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"

        yield event("response.created", response=self._response(body, "in_progress", [], None))
        if isinstance(step, Failure):
            yield event("error", code=None, message=step.message, param=None)
            return
        turn, output = step, []
        if turn.text:
            message = self._message(turn.text)
            opening = {**message, "status": "in_progress", "content": []}
            yield event("response.output_item.added", output_index=0, item=opening)
            for piece in pieces(turn.text, turn.chunk_size):
                await asyncio.sleep(turn.delay)
                yield event("response.output_text.delta", item_id=message["id"], output_index=0, content_index=0,
                            delta=piece)  # fmt: skip
            if turn.hang:
                await self.hold()
                return
            yield event("response.output_item.done", output_index=0, item=message)
            output.append(message)
        for call in turn.tool_calls:
            item, index = self._call_item(call), len(output)
            field = "input" if item["type"] == "custom_tool_call" else "arguments"
            yield event("response.output_item.added", output_index=index, item={**item, field: "", "status":
                                                                                  "in_progress"})  # fmt: skip
            delta = (
                "response.custom_tool_call_input.delta"
                if field == "input"
                else "response.function_call_arguments.delta"
            )
            for piece in pieces(item[field], turn.chunk_size):
                yield event(delta, item_id=item["id"], output_index=index, delta=piece)
            yield event("response.output_item.done", output_index=index, item=item)
            output.append(item)
        yield event("response.completed", response=self._response(body, "completed", output, turn))
