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
    SNAPSHOT = "snapshot"  # host -> viewer: the whole transcript so far
    ENTRY = "entry"  # host -> viewer: insert or replace one transcript entry
    APPEND = "append"  # host -> viewer: append streamed text to a message entry
    OUTPUT = "output"  # host -> viewer: new output of a command shown in a tool call
    TURN = "turn"  # host -> viewer: a turn started or ended
    ENDED = "ended"  # host -> viewer: the session is over
    SESSIONS = "sessions"  # host -> viewer: the user's other live sessions on this machine (host/live.py)


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
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"client": (str,), "device": (dict, type(None))}
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"device"})
    client: str = "unknown"
    # {"public_key", "name", "proof"}: the viewer's device key and its signature over this
    # connection's handshake transcript (protocol/signing.py DeviceClaim).
    device: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Prompt(Message):
    KIND: ClassVar[Kind] = Kind.PROMPT
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"text": (str,), "attachments": (list, type(None))}
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"attachments"})
    text: str
    # Files and images that go with the prompt: [{"name", "mime", "data" (base64)}] (protocol/attachments.py).
    attachments: list[Any] | None = None


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


@dataclass(frozen=True, slots=True)
class Snapshot(Message):
    KIND: ClassVar[Kind] = Kind.SNAPSHOT
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"session": (dict,), "entries": (list,), "running": (bool,)}
    session: JSON
    entries: list[JSON] = field(default_factory=list)
    running: bool = False


@dataclass(frozen=True, slots=True)
class Entry(Message):
    KIND: ClassVar[Kind] = Kind.ENTRY
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"entry": (dict,)}
    entry: JSON

    def check(self, error: type[Exception] = LocalProtocolError) -> None:
        """Also require the entry's ``id`` and ``type``."""
        Message.check(self, error)
        if not isinstance(self.entry.get("id"), str) or not isinstance(self.entry.get("type"), str):
            raise error("entry needs a string id and type")


@dataclass(frozen=True, slots=True)
class Append(Message):
    KIND: ClassVar[Kind] = Kind.APPEND
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"id": (str,), "text": (str,)}
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Output(Message):
    KIND: ClassVar[Kind] = Kind.OUTPUT
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"id": (str,), "terminal_id": (str,), "text": (str,)}
    id: str
    terminal_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Turn(Message):
    KIND: ClassVar[Kind] = Kind.TURN
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"running": (bool,), "stop_reason": (str, type(None))}
    running: bool
    stop_reason: str | None = None


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
        Snapshot,
        Entry,
        Append,
        Output,
        Turn,
        Ended,
        Sessions,
    )
}


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
