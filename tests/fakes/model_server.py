"""The shared core of the fake model APIs: scripted turns, recorded requests, a real HTTP server.

A fake is a real HTTP server on 127.0.0.1 (a free port) that answers each model request
with the next step of its script, in the wire format of the API it fakes
(``fake_anthropic.FakeAnthropic``, ``fake_openai.FakeOpenAI``). A step is:

- ``Turn``: one model reply, its text streamed in small deltas, then its tool calls
  (arguments streamed as JSON pieces), the stop reason and token usage. ``hang=True``
  keeps the stream open after the text until the client goes away (to test cancel).
- ``Failure``: an HTTP error in the API's own error shape (429 with ``retry-after``,
  529 overloaded, 404 unknown model, ...), or with ``in_stream=True`` an error event in
  the middle of a stream that started with 200.
- a callable ``(RecordedRequest) -> Turn | Failure``, to answer from what was sent.

``side`` answers requests that are not part of the scripted conversation, such as the
title generation or classifier calls a real agent makes next to its main loop: a callable
``(RecordedRequest) -> Turn | Failure | None`` asked first for every model request; what
it answers does not consume the script, ``None`` leaves the request to the script. Such
requests are also listed in ``side_requests``.

When the script runs out, the fake answers 400 "script exhausted", which fails loudly.
Every request is recorded (``requests``) so tests can assert on what the client sent.

Use it from async tests as ``async with FakeAnthropic([...]) as fake`` (the server runs on
the test's event loop) or from sync tests as ``with FakeAnthropic([...]).in_thread() as fake``.
Point the client at ``fake.base_url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass(frozen=True)
class ScriptedCall:
    """A tool call the fake model makes: ``name(**arguments)``; the id is generated when None."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class Turn:
    """One scripted model reply (see module doc). Token counts default to estimates from sizes."""

    text: str = ""
    tool_calls: tuple[ScriptedCall, ...] = ()
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    hang: bool = False
    chunk_size: int = 8
    delay: float = 0.0


@dataclass(frozen=True)
class Failure:
    """A scripted error: HTTP ``status`` with the API's error body, or an error event mid-stream."""

    status: int = 429
    message: str = "Rate limit exceeded (fake)"
    error_type: str | None = None
    retry_after: str | None = None
    in_stream: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """What the client sent: method, path, query, lower-cased headers, JSON body (or None)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Step = Turn | Failure | Callable[[RecordedRequest], Turn | Failure]


def call(name: str, **arguments: Any) -> ScriptedCall:
    """Shorthand for a scripted tool call."""
    return ScriptedCall(name, arguments)


def pieces(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of ``size`` characters (at least one piece)."""
    size = max(size, 1)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def estimate_tokens(value: Any) -> int:
    """A rough token count (4 characters a token), the way the fakes report usage."""
    return max(len(json.dumps(value)) // 4, 1)


@dataclass
class _Served:
    server: uvicorn.Server
    task: asyncio.Task[None]
    release: asyncio.Event


class FakeModelServer:
    """Script, recording and server lifecycle; subclasses add the API's routes and formats."""

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        api_key: str | None = None,
        models: Iterable[str] | None = None,
        side: Callable[[RecordedRequest], Turn | Failure | None] | None = None,
    ) -> None:
        self.script: deque[Step] = deque(script)
        self.side = side
        self.side_requests: list[RecordedRequest] = []
        self.api_key = api_key
        self.models = set(models) if models is not None else None
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self.port = 0
        self._served: _Served | None = None
        self._changed: asyncio.Condition | None = None

    # -- to override -------------------------------------------------------------------
    def routes(self) -> list[Route]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """What to put in the SDK's base URL variable."""
        return f"http://127.0.0.1:{self.port}"

    # -- script ------------------------------------------------------------------------
    def add(self, *steps: Step) -> None:
        """Append steps to the script (also while serving)."""
        self.script.extend(steps)

    def next_step(self, request: RecordedRequest) -> Turn | Failure | None:
        if self.side is not None and (aside := self.side(request)) is not None:
            self.side_requests.append(request)
            return aside
        if not self.script:
            return None
        step = self.script.popleft()
        return step(request) if callable(step) else step

    async def record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(recorded)
        await self._notify()
        return recorded

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait, on the server's loop, until ``predicate()`` holds; re-checked at each request and
        disconnect (wrap it in ``asyncio.timeout``)."""
        assert self._changed is not None, "serve first"
        async with self._changed:
            await self._changed.wait_for(predicate)

    def model_requests(self) -> list[RecordedRequest]:
        """The requests that asked the model for a reply (not HEAD probes, model lists, ...)."""
        return [r for r in self.requests if r.method == "POST" and isinstance(r.body, dict) and "messages" in r.body]

    # -- streaming helpers for subclasses -------------------------------------------------
    async def hold(self) -> None:
        """Keep a stream open until the client disconnects or the server stops."""
        assert self._served is not None
        await self._served.release.wait()

    def streaming(self, events: AsyncIterator[str]) -> StreamingResponse:
        """An SSE response that counts client disconnects (the generator is cancelled then)."""

        async def body() -> AsyncIterator[bytes]:
            finished = False
            try:
                async for event in events:
                    yield event.encode()
                finished = True
            finally:
                if not finished:
                    self.disconnects += 1
                    await self._notify()

        headers = {"cache-control": "no-cache", "x-request-id": f"req_fake_{len(self.requests)}"}
        return StreamingResponse(body(), media_type="text/event-stream", headers=headers)

    @staticmethod
    def json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Serve on 127.0.0.1 on a free port, on the running event loop."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            Starlette(routes=self.routes()),
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._changed = asyncio.Condition()
        task = asyncio.create_task(server.serve(sockets=[sock]))
        self._served = _Served(server, task, asyncio.Event())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Release held streams and stop serving."""
        if self._served is None:
            return
        served, self._served = self._served, None
        served.release.set()
        served.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await served.task

    async def __aenter__(self) -> FakeModelServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeModelServer]:
        """Serve from a thread with its own event loop, for sync tests."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                errors.append(exc)
                return
            finally:
                ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="fake-model-server", daemon=True)
        thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event."""
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{head}data: {payload}\n\n"


@dataclass
class Counter:
    """Ids that look like the real ones: ``prefix_0001``..."""

    prefix: str
    value: int = field(default=0)

    def next(self) -> str:
        self.value += 1
        return f"{self.prefix}{self.value:04d}"
