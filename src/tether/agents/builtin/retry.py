"""Model API failures: which ones to retry, how long to wait, and the line the user reads.

Pure functions; the adapters call ``status_error`` / ``connection_error`` at their edge
and the agent loop calls ``backoff_delay`` with its own random jitter.

Retried: 408, 409, 429, 5xx and Anthropic's 529 ``overloaded_error`` (also when it comes
as an ``error`` event in the middle of a stream, where the HTTP status is still 200), and
timeouts. Not retried: a bad key (401/403), an unknown model (404), a refused request
(400/422) and a server that cannot be reached at all (connection refused, bad host):
waiting does not fix those, so the user gets one line saying what to change.
"""

from __future__ import annotations

from collections.abc import Mapping

from tether.errors import ProviderError

MAX_ATTEMPTS = 5
BASE_DELAY = 1.0
MAX_DELAY = 30.0
# A server asking for more than this is treated as "later": we still wait, but cap it so a
# turn does not hang silently for many minutes.
MAX_SERVER_DELAY = 60.0
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
RETRYABLE_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error", "timeout_error"})


def backoff_delay(attempt: int, retry_after: float | None, jitter: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based); ``jitter`` is in [0, 1).

    The server's hint wins when it gave one; otherwise exponential backoff with "equal
    jitter" (half fixed, half random) so that many clients do not retry in step.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_SERVER_DELAY)
    ceiling = min(BASE_DELAY * 2 ** (attempt - 1), MAX_DELAY)
    return float(ceiling / 2 + ceiling / 2 * jitter)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's wait hint in seconds: ``retry-after-ms``, else ``retry-after`` in seconds."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except ValueError:
            continue  # an HTTP date: rare from these APIs; fall back to our own backoff
    return None


def error_detail(body: object) -> tuple[str | None, str | None]:
    """(error type, message) from an error body: Anthropic, OpenAI or Ollama shapes."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            kind = inner.get("type") or inner.get("code")
            message = inner.get("message")
            return (str(kind) if kind else None, str(message) if message else None)
        if isinstance(inner, str):
            return (None, inner)
    if isinstance(body, str) and body.strip():
        return (None, body.strip()[:300])
    return (None, None)


def status_error(
    status: int,
    body: object,
    headers: Mapping[str, str],
    *,
    endpoint: str,
    model: str,
    key_variable: str,
) -> ProviderError:
    """The ProviderError for an HTTP error answer (or an ``error`` event inside a stream)."""
    kind, message = error_detail(body)
    detail = f": {message}" if message else ""
    code = f"HTTP {status}" if status >= 400 else f"stream error {kind or 'unknown'}"
    retryable = status in RETRYABLE_STATUS or (kind in RETRYABLE_TYPES)
    if retryable:
        what = "rate limited" if status == 429 or kind == "rate_limit_error" else "overloaded or failing"
        text = f"The model API at {endpoint} is {what} ({code}){detail}"
    elif status in (401, 403):
        text = f"The model API at {endpoint} refused the API key ({code}){detail}. Check {key_variable}."
    elif status == 404:
        text = (
            f"The model API at {endpoint} does not know model {model!r} ({code}){detail}. "
            "Choose another with --model or TETHER_AGENT_MODEL."
        )
    else:
        text = f"The model API at {endpoint} refused the request ({code}){detail}"
    return ProviderError(text, retryable=retryable, retry_after=parse_retry_after(headers))


def connection_error(endpoint: str, base_variable: str, *, timeout: bool, reason: str) -> ProviderError:
    """The ProviderError for a request that got no HTTP answer at all."""
    if timeout:
        return ProviderError(f"The model API at {endpoint} timed out", retryable=True)
    cause = f" ({reason})" if reason else ""
    return ProviderError(
        f"Cannot reach the model API at {endpoint}{cause}. Check {base_variable} and that the server is running."
    )


def retry_notice(error: ProviderError, attempt: int, delay: float) -> str:
    """What the transcript shows while the agent waits to retry."""
    return f"{error}. Retrying in {delay:.1f} s (attempt {attempt + 1} of {MAX_ATTEMPTS})."


def broken_stream(endpoint: str, exc: BaseException) -> ProviderError:
    """The ProviderError for a stream that broke off after the answer began: worth one more try."""
    return ProviderError(f"The model stream from {endpoint} broke off ({type(exc).__name__}: {exc})", retryable=True)


TRANSPORT_MODULES = frozenset({"httpx", "httpx2", "httpcore", "httpcore2", "h11", "anyio"})


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the HTTP stack failing (not a bug of ours): socket errors, httpx errors."""
    return isinstance(exc, OSError) or type(exc).__module__.partition(".")[0] in TRANSPORT_MODULES
