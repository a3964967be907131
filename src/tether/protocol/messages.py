"""Messages between host and viewer: a closed set of kinds (docs/protocol.md section 3).

Each message is a frozen dataclass. ``serialize`` turns it into the JSON payload of a
frame, ``parse`` turns a payload back into a message; both call ``check``, which
verifies every field against the types declared in ``FIELDS``. A payload of an unknown
kind parses to ``None`` so that newer peers can add kinds within a protocol version.

``parse`` takes anything a peer sends and raises nothing but RemoteProtocolError (not
UTF-8, not JSON, nested too deep for the decoder, wrong fields). ``serialize`` never fails
on the content of a string: a lone UTF-16 surrogate, which a Python str can hold (half an
emoji cut between two agent chunks) but UTF-8 cannot, goes out as U+FFFD, and a pair of
surrogate code points goes out as the character they make.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from tether.errors import LocalProtocolError, RemoteProtocolError

JSON = dict[str, Any]


class Kind(enum.StrEnum):
    """Every message kind of protocol version 1."""

    HELLO = "hello"  # viewer -> host: first message on a connection; asks for a snapshot
    PROMPT = "prompt"  # viewer -> host: a user prompt for the agent
    DECIDE = "decide"  # viewer -> host: the chosen option of a pending approval
    CANCEL = "cancel"  # viewer -> host: stop the current turn
    SET_MODE = "set_mode"  # viewer -> host: switch the agent's session mode
    SET_OPTION = "set_option"  # viewer -> host: change one of the agent's session config options
    AUTHENTICATE = "authenticate"  # viewer -> host: log the agent in with one of its methods
    REVOKE = "revoke"  # viewer -> host: end one "always allow" of this session (its number in the allowed entry)
    SNAPSHOT = "snapshot"  # host -> viewer: the whole transcript so far
    ENTRY = "entry"  # host -> viewer: insert or replace one transcript entry
    APPEND = "append"  # host -> viewer: append streamed text to a message entry
    OUTPUT = "output"  # host -> viewer: new output of a command shown in a tool call
    TURN = "turn"  # host -> viewer: a turn started or ended
    REPLAY = "replay"  # host -> viewer: what a returning viewer missed, instead of the whole transcript
    ENDED = "ended"  # host -> viewer: the session is over
    SESSIONS = "sessions"  # host -> viewer: the user's other live sessions on this machine (host/live.py)
    REFUSED = "refused"  # host -> one viewer: its decision of an approval was refused, why, and when to try again


@dataclass(frozen=True, slots=True)
class Message:
    """Base of all messages; subclasses set KIND and FIELDS."""

    KIND: ClassVar[Kind]
    # field name -> accepted JSON types (None allowed where listed as type(None))
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {}
    # fields added later, sent only when set: a message without them is what it always was
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def check(self, error: type[Exception] = LocalProtocolError) -> None:
        """Raise ``error`` unless every field has one of its declared types."""
        for name, types in self.FIELDS.items():
            value = getattr(self, name)
            # bool is an int in Python; keep JSON's distinction.
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise error(f"{self.KIND} field {name!r} has the wrong type {type(value).__name__}")

    def to_json(self) -> JSON:
        """The message as a JSON object, ``kind`` first; an ``OPTIONAL`` field left out while None."""
        fields = asdict(self)
        return {"kind": str(self.KIND), **{k: v for k, v in fields.items() if v is not None or k not in self.OPTIONAL}}

    def serialize(self) -> bytes:
        """The UTF-8 JSON payload carried by one or more frames (surrogates: see module doc)."""
        self.check()
        text = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))
        try:
            return text.encode()
        except UnicodeEncodeError:
            # Through UTF-16, surrogates pair up where they can; the rest become U+FFFD.
            return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode()


@dataclass(frozen=True, slots=True)
class Hello(Message):
    KIND: ClassVar[Kind] = Kind.HELLO
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "client": (str,), "device": (dict, type(None)), "since": (int, type(None)), "run": (str, type(None)),
    }  # fmt: skip
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"device", "since", "run"})
    client: str = "unknown"
    # {"public_key", "name", "proof"}: the viewer's device key and its signature over this
    # connection's handshake transcript (protocol/signing.py DeviceClaim).
    device: dict[str, Any] | None = None
    # A viewer coming back: the ``n`` of the last transcript message it applied, in the host run ``run``
    # (from its last snapshot or replay). The host then sends only what came after (Replay).
    since: int | None = None
    run: str | None = None


@dataclass(frozen=True, slots=True)
class Prompt(Message):
    KIND: ClassVar[Kind] = Kind.PROMPT
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "text": (str,), "attachments": (list, type(None)), "id": (str, type(None)),
    }  # fmt: skip
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"attachments", "id"})
    text: str
    # Files and images that go with the prompt: [{"name", "mime", "data" (base64)}] (protocol/attachments.py).
    attachments: list[Any] | None = None
    # Chosen by the viewer, unique per prompt: a prompt sent again after a reconnection runs once. Like a
    # transcript message's ``n``, not part of what the prompt says.
    id: str | None = field(default=None, compare=False)

    def check(self, error: type[Exception] = LocalProtocolError) -> None:
        """Also bound the id's length (the host remembers ids)."""
        Message.check(self, error)
        if self.id is not None and not 0 < len(self.id) <= MAX_PROMPT_ID:
            raise error(f"a prompt id has 1 to {MAX_PROMPT_ID} characters")


@dataclass(frozen=True, slots=True)
class Decide(Message):
    KIND: ClassVar[Kind] = Kind.DECIDE
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "approval_id": (str,),
        "option_id": (str,),
        "signature": (str, type(None)),
        "expires": (int, type(None)),
    }
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"signature", "expires"})
    approval_id: str
    option_id: str
    # A device's decision is signed (protocol/signing.py): base64url Ed25519 signature, and
    # the expiry it covers in milliseconds since the epoch. The terminal's need neither.
    signature: str | None = None
    expires: int | None = None


@dataclass(frozen=True, slots=True)
class Cancel(Message):
    KIND: ClassVar[Kind] = Kind.CANCEL


@dataclass(frozen=True, slots=True)
class SetMode(Message):
    KIND: ClassVar[Kind] = Kind.SET_MODE
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"mode_id": (str,)}
    mode_id: str


@dataclass(frozen=True, slots=True)
class SetOption(Message):
    KIND: ClassVar[Kind] = Kind.SET_OPTION
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"option_id": (str,), "value": (str, bool)}
    option_id: str
    value: str | bool


@dataclass(frozen=True, slots=True)
class Authenticate(Message):
    KIND: ClassVar[Kind] = Kind.AUTHENTICATE
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"method_id": (str,)}
    method_id: str


MAX_PROMPT_ID = 64  # characters of a prompt's id
N: tuple[type, ...] = (int, type(None))  # the optional ``n`` of a transcript message (host/core/journal.py)


@dataclass(frozen=True, slots=True)
class Revoke(Message):
    KIND: ClassVar[Kind] = Kind.REVOKE
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"number": (int,)}
    number: int


@dataclass(frozen=True, slots=True)
class Snapshot(Message):
    KIND: ClassVar[Kind] = Kind.SNAPSHOT
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "session": (dict,), "entries": (list,), "running": (bool,), "at": N, "run": (str, type(None)),
        "received": (list, type(None)), "reset": (str, type(None)), "remaining": (dict, type(None)),
    }  # fmt: skip
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"at", "run", "received", "reset", "remaining"})
    session: JSON
    entries: list[JSON] = field(default_factory=list)
    running: bool = False
    at: int | None = None  # the ``n`` of the newest transcript message it includes
    run: str | None = None  # this host run's id: a ``since`` is only good within the same run
    received: list[str] | None = None  # ids of the newest prompts the host took (a viewer resends the others)
    reset: str | None = None  # why a viewer that asked ``since`` gets the whole transcript: behind, ahead, run
    # Approval id -> seconds each pending approval still waits, as of when the host sent this (its clock is not
    # the viewer's): the viewer counts down from that. Computed at send time, so never part of an entry.
    remaining: JSON | None = None

    def check(self, error: type[Exception] = LocalProtocolError) -> None:
        Message.check(self, error)
        check_remaining(self.remaining, error)


@dataclass(frozen=True, slots=True)
class Replay(Message):
    """The transcript messages after ``since`` up to ``at``, for a viewer that has the transcript up to ``since``."""

    KIND: ClassVar[Kind] = Kind.REPLAY
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "session": (dict,), "since": (int,), "at": (int,), "run": (str,), "messages": (list,), "running": (bool,),
        "received": (list,), "remaining": (dict, type(None)),
    }  # fmt: skip
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"remaining"})
    session: JSON
    since: int
    at: int
    run: str
    messages: list[JSON] = field(default_factory=list)  # entry, append, output and turn messages, each with its n
    running: bool = False
    received: list[str] = field(default_factory=list)
    remaining: JSON | None = None  # as in Snapshot: the replayed entries are as old as the journal's

    def check(self, error: type[Exception] = LocalProtocolError) -> None:
        """Also require every replayed message to be a numbered transcript message."""
        Message.check(self, error)
        check_remaining(self.remaining, error)
        for item in self.messages:
            if not isinstance(item, dict) or item.get("kind") not in NUMBERED or not isinstance(item.get("n"), int):
                raise error("a replay carries only numbered entry, append, output and turn messages")

    def parsed(self) -> list[Message]:
        """The replayed messages as Message objects (RemoteProtocolError if one is malformed)."""
        return [m for m in (from_json(dict(item)) for item in self.messages) if m is not None]


@dataclass(frozen=True, slots=True)
class Entry(Message):
    KIND: ClassVar[Kind] = Kind.ENTRY
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"entry": (dict,), "n": N}
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"n"})
    entry: JSON
    # Its number in the host's journal (host/core/journal.py): not part of what the message says.
    n: int | None = field(default=None, compare=False)

    def check(self, error: type[Exception] = LocalProtocolError) -> None:
        """Also require the entry's ``id`` and ``type``."""
        Message.check(self, error)
        if not isinstance(self.entry.get("id"), str) or not isinstance(self.entry.get("type"), str):
            raise error("entry needs a string id and type")


@dataclass(frozen=True, slots=True)
class Append(Message):
    KIND: ClassVar[Kind] = Kind.APPEND
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"id": (str,), "text": (str,), "n": N}
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"n"})
    id: str
    text: str
    n: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Output(Message):
    KIND: ClassVar[Kind] = Kind.OUTPUT
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"id": (str,), "terminal_id": (str,), "text": (str,), "n": N}
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"n"})
    id: str
    terminal_id: str
    text: str
    n: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Turn(Message):
    KIND: ClassVar[Kind] = Kind.TURN
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"running": (bool,), "stop_reason": (str, type(None)), "n": N}
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"n"})
    running: bool
    stop_reason: str | None = None
    n: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Ended(Message):
    KIND: ClassVar[Kind] = Kind.ENDED
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"reason": (str,)}
    reason: str


@dataclass(frozen=True, slots=True)
class Sessions(Message):
    KIND: ClassVar[Kind] = Kind.SESSIONS
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"sessions": (list,)}
    sessions: list[JSON] = field(default_factory=list)  # each {"id","url","title","agent","cwd"}, all strings

    def check(self, error: type[Exception] = LocalProtocolError) -> None:
        """Also require each session to be an object of strings with an id and a URL."""
        Message.check(self, error)
        for session in self.sessions:
            if not isinstance(session, dict) or not all(isinstance(v, str) for v in session.values()):
                raise error("each session must be an object of strings")
            if not session.get("id") or not session.get("url"):
                raise error("each session needs an id and a url")


@dataclass(frozen=True, slots=True)
class Refused(Message):
    """Sent to the one viewer whose decision was refused (never numbered: not a transcript change)."""

    KIND: ClassVar[Kind] = Kind.REFUSED
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "approval_id": (str,), "reason": (str,), "retry": (int, float, type(None)),
    }  # fmt: skip
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"retry"})
    approval_id: str
    reason: str
    retry: float | None = None  # seconds until the same answer would count (a cooldown); None: waiting will not help


def check_remaining(remaining: JSON | None, error: type[Exception]) -> None:
    """``remaining`` maps approval ids to seconds (a number, not negative)."""
    for seconds in (remaining or {}).values():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
            raise error("remaining maps approval ids to seconds left")


BY_KIND: dict[str, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Hello,
        Prompt,
        Decide,
        Cancel,
        SetMode,
        SetOption,
        Authenticate,
        Revoke,
        Snapshot,
        Entry,
        Append,
        Output,
        Turn,
        Ended,
        Sessions,
        Replay,
        Refused,
    )
}
# Kinds that change the transcript (or the turn) every screen mirrors: numbered by the host, replayable.
NUMBERED = frozenset({Kind.ENTRY, Kind.APPEND, Kind.OUTPUT, Kind.TURN})


def parse(payload: bytes) -> Message | None:
    """Decode a reassembled payload; ``None`` for an unknown kind.

    Raises RemoteProtocolError for anything that is not a well-formed message.
    """
    try:
        # Decoded first: json.loads would also take UTF-16 and UTF-32 bytes.
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RemoteProtocolError(f"payload is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise RemoteProtocolError("payload is nested too deeply") from None
    return from_json(data)


def from_json(data: Any) -> Message | None:
    """A decoded JSON object as a message; ``None`` for an unknown kind. Raises RemoteProtocolError."""
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise RemoteProtocolError("payload is not an object with a kind")
    cls = BY_KIND.get(data.pop("kind"))
    if cls is None:
        return None
    try:
        message = cls(**data)
    except TypeError as exc:
        raise RemoteProtocolError(f"bad fields for {cls.KIND}: {exc}") from None
    message.check(RemoteProtocolError)
    return message
