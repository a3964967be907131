"""Who may see and drive the session: the viewer connection's admission, without I/O (DESIGN.md rule 3).

Rule: a browser is admitted only after an end-to-end handshake whose salt it could only
know from the session URL (the pairing secret) or from its own last admitted connection
(a resume secret), and after it proved its device key. A device this host paired before
(and did not revoke) is admitted at once; a new one only when the developer answers
``y`` to ``pair <device>, code NNNNNN? [y/N]`` at the terminal (or ``--accept-device``
was given). Until then it receives nothing of the session.

The pairing secret works once and for ``PAIRING_LIFETIME`` seconds: it is spent when a
device is admitted or refused with it, replaced (``Rotate``) when it expires, when the
developer refuses a device, or when a second device proves it while the first one waits
for its answer (both are refused: a race means the URL leaked).

Taking over (one controlling device, DESIGN.md rule 3): a browser may ask the relay to
replace the viewer in place; the host hears that viewer left ``replaced`` and the newcomer
join. Who is then admitted at once and who is asked ``take over from <old> for <new>, code
NNNNNN? [y/N]`` is the ``ADMISSION`` table below: the device just displaced takes control
back without a question (it held the session a moment ago; otherwise anyone holding the
URL could lock its owner out); any other device is asked, paired or not, unless
``--accept-device`` or ``remote.takeover = paired`` (then a paired device is admitted).
A take-over may use the session URL's pairing secret after it was spent (a second browser
opening the same link): it gets the question, never an admission without one.

Every transition of the connection is in ``TRANSITIONS``; ``Pairing.handle(event, now)``
returns the effects for the shell (host/relay_link.py) to carry out in order. Randomness
is a parameter and the clock comes in with each event: nothing here does I/O.

::

    idle --joined--> handshake --offer--> proving --hello(known device)--------> admitted
                                             \\--hello(new device)--> confirming --yes--> admitted
                                                                        \\--no/race--> refused
    (any) --left--> idle            (any but idle) --revoked(this device)--> refused
    admitted --left(replaced)--> idle, then the newcomer as above, with ADMISSION's take-over rows
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.protocol.crypto import KEY_SIZE, HostHandshake, KeyOffer, Keys, resume_id
from tether.protocol.signing import DeviceClaim

PAIRING_LIFETIME = 600.0  # seconds a session URL's pairing secret stays good (DESIGN.md rule 3)


class Phase(enum.StrEnum):
    IDLE = "idle"  # no viewer connected
    HANDSHAKE = "handshake"  # a viewer connected; its key_offer is awaited
    PROVING = "proving"  # keys made; its first sealed frame (hello, with the device proof) is awaited
    CONFIRMING = "confirming"  # a new device: the terminal was asked
    ADMITTED = "admitted"  # the viewer sees and drives the session
    REFUSED = "refused"  # this connection gets nothing more


# -- events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Joined:
    """The relay says a viewer connected."""


@dataclass(frozen=True, slots=True)
class Left:
    """The viewer's connection ended; ``replaced``: the relay closed it for a viewer taking over."""

    replaced: bool = False


@dataclass(frozen=True, slots=True)
class Offered:
    offer: KeyOffer


@dataclass(frozen=True, slots=True)
class Proved:
    """The first sealed frame opened (proof of the salt) and carried this device claim."""

    device: DeviceClaim


@dataclass(frozen=True, slots=True)
class Answered:
    """The developer answered the pairing question."""

    yes: bool


@dataclass(frozen=True, slots=True)
class Revoked:
    device_id: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: the pairing secret's age is checked before every event, this one only carries the clock."""


Event = Joined | Left | Offered | Proved | Answered | Revoked | Tick

# -- effects -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """Send the key_reply; seal and open with ``keys`` from now on."""

    handshake: HostHandshake
    offer: KeyOffer


@dataclass(frozen=True, slots=True)
class RefuseOffer:
    """Send ``key_refused`` with this reason in the clear (no keys were made)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask the terminal: pair this device (take over from ``replacing``, if set), showing this code?"""

    device: DeviceClaim
    code: str
    replacing: DeviceClaim | None = None


@dataclass(frozen=True, slots=True)
class Withdraw:
    """The question asked is moot (the device left, or was refused)."""


@dataclass(frozen=True, slots=True)
class Admit:
    device: DeviceClaim
    new: bool  # paired just now (remember it), or known from before


@dataclass(frozen=True, slots=True)
class Refuse:
    """Tell the viewer (sealed, if keys exist) why it gets nothing, and stop listening to it."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rotate:
    """A new pairing secret: the session URL changes; show the new one."""

    secret: bytes
    why: str


@dataclass(frozen=True, slots=True)
class Say:
    """A line for the terminal."""

    text: str


Effect = Reply | RefuseOffer | Ask | Withdraw | Admit | Refuse | Rotate | Say

# -- who is admitted at once, who is asked ----------------------------------------------


class Decision(enum.StrEnum):
    ADMIT = "admit"  # at once, without a question
    ASK = "ask"  # only on y at the terminal (or `tether devices accept`)


TAKEOVER_CHOICES = ("ask", "paired")  # remote.takeover


@dataclass(frozen=True, slots=True)
class Candidate:
    """A device that proved its key, as the admission rule sees it."""

    taking_over: bool  # it replaced an admitted device (the relay closed that one `replaced`)
    displaced: bool  # it is the device a take-over displaced last
    paired: bool  # this host paired it before (and did not revoke it)
    accept_all: bool  # --accept-device
    takeover: str  # remote.takeover: "ask" or "paired"


ADMISSION: tuple[tuple[str, Callable[[Candidate], bool], Decision], ...] = (
    # The first row that holds decides.
    ("it takes back the control it lost to a take-over", lambda c: c.taking_over and c.displaced, Decision.ADMIT),
    ("--accept-device", lambda c: c.accept_all, Decision.ADMIT),
    ("remote.takeover = paired", lambda c: c.taking_over and c.paired and c.takeover == "paired", Decision.ADMIT),
    ("it takes over from another device", lambda c: c.taking_over, Decision.ASK),
    ("a device this host paired before", lambda c: c.paired, Decision.ADMIT),
    ("a new device", lambda c: True, Decision.ASK),
)
"""Who is admitted at once and who is asked at the terminal (module doc)."""


def decide(candidate: Candidate) -> tuple[Decision, str]:
    """The decision for ``candidate`` and the ``ADMISSION`` row that made it."""
    return next((decision, why) for why, holds, decision in ADMISSION if holds(candidate))


class Pairing:
    """The admission state of one session's viewer slot (see module doc).

    ``known(device_id)`` -> the paired device's public key, or None (revoked or never
    paired); ``accept_all`` is ``--accept-device``.
    """

    def __init__(
        self,
        session_id: str,
        random_bytes: Callable[[int], bytes],
        known: Callable[[str], bytes | None],
        now: float,
        accept_all: bool = False,
        takeover: str = "ask",
    ) -> None:
        if takeover not in TAKEOVER_CHOICES:
            raise ValueError(f"remote.takeover takes ask or paired, not {takeover!r}")
        self.session_id = session_id
        self.random_bytes = random_bytes
        self.known = known
        self.accept_all = accept_all
        self.takeover = takeover
        self.over: DeviceClaim | None = None  # the admitted device this connection replaced (a take-over)
        # Devices a take-over displaced while in control, until they are back (id -> public key): they
        # take control back without a question.
        self.displaced: dict[str, bytes] = {}
        self.phase = Phase.IDLE
        self.secret = random_bytes(KEY_SIZE)
        self.secret_since = now
        self.secret_spent = False
        self.keys: Keys | None = None
        self.device: DeviceClaim | None = None  # the device on this connection, once it proved its key
        self.waiting: DeviceClaim | None = None  # a new device whose pairing question is open
        self.resumes: dict[str, tuple[bytes, str]] = {}  # resume_id -> (resume secret, device id)
        self._salt_kind = ""  # "pairing" or the resume_id this connection's handshake used
        self._out: list[Effect] = []
        self._now = now

    # -- the door ----------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Effect]:
        self._out = []
        self._now = now
        self._expire(now)
        handler = TRANSITIONS.get((self.phase, type(event)))
        if handler is not None:
            handler(self, event, now)
        elif isinstance(event, Left | Revoked):
            ANY[type(event)](self, event, now)
        return self._out

    @property
    def admitted(self) -> bool:
        return self.phase is Phase.ADMITTED

    # -- transitions -------------------------------------------------------------------

    def _joined(self, event: Joined, now: float) -> None:
        self.phase, self.keys, self.device = Phase.HANDSHAKE, None, None

    def _offered(self, event: Offered, now: float) -> None:
        salt = self._salt(event.offer)
        if salt is None:
            self.phase = Phase.REFUSED
            reason = (
                "this link was used already or has expired: ask for a new one on the computer"
                if event.offer.resume is None
                else "this browser's earlier admission is no longer valid: open a new link from the computer"
            )
            self._out.append(RefuseOffer(reason))
            return
        self.phase = Phase.PROVING
        self._out.append(Reply(HostHandshake(self.session_id, salt, self.random_bytes), event.offer))

    def keys_made(self, keys: Keys) -> None:
        """The shell ran the handshake of a ``Reply``: these are the connection's keys."""
        self.keys = keys

    def _proved(self, event: Proved, now: float) -> None:
        device = event.device
        if self.keys is None or not device.proves(self.keys.transcript):
            self._refuse("the device could not prove its key")
            return
        self.device = device
        # A resume: only the device admitted before may come back.
        if self._salt_kind != "pairing" and (
            self.resumes.pop(self._salt_kind, (b"", ""))[1] != device.id or self.known(device.id) is None
        ):
            self._refuse("this browser's earlier admission is no longer valid")
            return
        paired = self.known(device.id) == device.public_key
        displaced = self.displaced.get(device.id) == device.public_key
        decision, why = decide(Candidate(self.over is not None, displaced, paired, self.accept_all, self.takeover))
        if decision is Decision.ADMIT:
            if why == "--accept-device" and not paired:
                self._out.append(Say(f"Admitted {device.name} ({device.id}) without asking (--accept-device)."))
            self._admit(device, new=not paired)
        elif self._salt_kind == "pairing" and self.waiting is not None and self.waiting.id != device.id:
            self.waiting = None
            self._out.append(Withdraw())
            self._refuse("two devices tried to pair with the same link; a new link is shown on the computer")
            self._rotate("two devices raced to pair with the same link")
        else:
            if self._salt_kind == "pairing":
                self.waiting = device
            self.phase = Phase.CONFIRMING
            self._out.append(Ask(device, self.keys.pairing_code, self.over))

    def _answered(self, event: Answered, now: float) -> None:
        device, self.waiting = self.device, None
        if device is None:
            return
        if event.yes:
            self._admit(device, new=self.known(device.id) != device.public_key)
        elif self.over is not None:
            self._refuse("taking over was refused at the computer")
            if self._salt_kind == "pairing":
                self._rotate("a take-over was refused")
        else:
            self._refuse("the pairing was refused at the computer")
            self._rotate("the pairing was refused")

    def _left(self, event: Left, now: float) -> None:
        if self.phase is Phase.ADMITTED and self.device is not None:
            if event.replaced:
                self.over = self.device
                self.displaced[self.device.id] = self.device.public_key
                self._out.append(Say(f"{self.device.name} ({self.device.id}) was replaced: another browser asks "
                                     "to take over."))  # fmt: skip
            else:
                self._out.append(Say(f"{self.device.name} ({self.device.id}) disconnected."))
        elif not event.replaced:
            self.over = None  # a take-over's context lasts while its newcomer is the one connected
        if self.phase is Phase.CONFIRMING:
            self._out.append(Withdraw())  # the question stays moot; the same device may come back
        self.phase, self.keys, self.device = Phase.IDLE, None, None

    def _revoked(self, event: Revoked, now: float) -> None:
        self.resumes = {k: v for k, v in self.resumes.items() if v[1] != event.device_id}
        self.displaced.pop(event.device_id, None)
        if self.device is not None and self.device.id == event.device_id and self.phase is not Phase.REFUSED:
            self._refuse("this device was revoked on the computer")

    # -- helpers -----------------------------------------------------------------------

    def _salt(self, offer: KeyOffer) -> bytes | None:
        if offer.resume is not None:
            found = self.resumes.get(offer.resume)
            self._salt_kind = offer.resume
            return found[0] if found else None
        self._salt_kind = "pairing"
        # A spent link still opens a take-over question (never more: ADMISSION asks), so that a second
        # browser with the same link can ask for control; a plain join with it is refused.
        return None if self.secret_spent and self.over is None else self.secret

    def _expire(self, now: float) -> None:
        if now - self.secret_since < PAIRING_LIFETIME:
            return
        if self.phase is Phase.CONFIRMING:
            self.waiting = None
            self._out.append(Withdraw())
            self._refuse("the pairing was not confirmed in time")
        self._rotate("the link expired (a link works for 10 minutes)")

    def _spend(self) -> None:
        self.secret_spent = True

    def _rotate(self, why: str) -> None:
        self.secret = self.random_bytes(KEY_SIZE)
        self.secret_spent = False
        self.secret_since = self._now
        self._out.append(Rotate(self.secret, why))

    def _admit(self, device: DeviceClaim, new: bool) -> None:
        assert self.keys is not None
        if self._salt_kind == "pairing":
            self._spend()
        if self.over is not None and self.over.id != device.id:
            old = self.over
            self._out.append(Say(f"{old.name} ({old.id}) was replaced by {device.name} ({device.id})."))
        elif self.over is not None:
            self._out.append(Say(f"{device.name} ({device.id}) took control back."))
        self.over = None
        self.displaced.pop(device.id, None)  # in control again
        self.phase = Phase.ADMITTED
        self.resumes[resume_id(self.keys.resume_secret)] = (self.keys.resume_secret, device.id)
        self._out.append(Admit(device, new))

    def _refuse(self, reason: str) -> None:
        self.phase = Phase.REFUSED
        self._out.append(Refuse(reason))


# What each phase does with each event; anything else is ignored (a late event is ordinary).
TRANSITIONS: dict[tuple[Phase, type], Callable[[Pairing, Any, float], None]] = {
    **{(phase, Joined): Pairing._joined for phase in Phase},
    (Phase.HANDSHAKE, Offered): Pairing._offered,
    (Phase.PROVING, Proved): Pairing._proved,
    (Phase.CONFIRMING, Answered): Pairing._answered,
}
# Events every phase handles the same way.
ANY: dict[type, Callable[[Pairing, Any, float], None]] = {
    Left: Pairing._left,
    Revoked: Pairing._revoked,
}
