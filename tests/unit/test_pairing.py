"""The admission rules (host/pairing.py), without sockets: the pairing secret's life, races, revocation."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from tether.errors import RemoteProtocolError
from tether.host import pairing as pair
from tether.protocol.crypto import ViewerHandshake, resume_id
from tether.protocol.secure import SecureChannel
from tether.protocol.signing import DeviceClaim, DeviceKey


class Slot:
    """A Pairing with a clock, and a viewer that runs the handshake against it."""

    def __init__(self, known: Callable[[str], bytes | None] = lambda _id: None, accept: bool = False) -> None:
        self.now = 0.0
        self.pairing = pair.Pairing("s" * 22, os.urandom, known, self.now, accept)
        self.effects: list[Any] = []
        self.resume = b""

    def __call__(self, event: Any) -> list[Any]:
        out = self.pairing.handle(event, self.now)
        self.effects += out
        return out

    def connect(self, device: DeviceKey, secret: bytes | None = None, resume: bytes | None = None) -> list[Any]:
        """A viewer joins, offers (the pairing secret, or ``resume``: the resume secret of an earlier admitted
        connection), and proves ``device``: the effects of its proof. ``self.resume``: this connection's."""
        self(pair.Joined())
        handshake = ViewerHandshake("s" * 22, resume or secret or self.pairing.secret, os.urandom)
        offer = handshake.offer()
        if resume is not None:
            offer = dataclasses.replace(offer, resume=resume_id(resume))
        (reply,) = self(pair.Offered(offer))
        if not isinstance(reply, pair.Reply):
            return [reply]
        host = SecureChannel()
        frame = host.accept(reply.handshake, reply.offer)
        assert host.keys is not None
        self.pairing.keys_made(host.keys)
        keys = SecureChannel().take_reply(handshake, frame)  # the viewer checks the host's confirmation
        self.resume = keys.resume_secret
        return self(pair.Proved(DeviceClaim.parse(device.claim(keys.transcript))))


def kinds(effects: list[Any]) -> list[type]:
    return [type(e) for e in effects]


def test_a_new_device_is_asked_about_and_admitted_only_on_yes() -> None:
    slot = Slot()
    asked = slot.connect(DeviceKey("phone"))
    assert [pair.Ask] == kinds(asked) and pair.Phase.CONFIRMING == slot.pairing.phase
    assert [pair.Admit] == kinds(slot(pair.Answered(True)))


def test_no_rotates_the_url() -> None:
    slot = Slot()
    secret = slot.pairing.secret
    slot.connect(DeviceKey("phone"))
    assert [pair.Refuse, pair.Rotate] == kinds(slot(pair.Answered(False)))
    assert secret != slot.pairing.secret


def test_a_paired_device_is_admitted_without_asking_and_spends_the_secret() -> None:
    phone = DeviceKey("phone")
    slot = Slot(known=lambda device_id: phone.public_key if device_id == phone.id else None)
    assert [pair.Admit] == kinds(slot.connect(phone))
    slot(pair.Left())
    assert [pair.RefuseOffer] == kinds(slot.connect(DeviceKey("someone else")))


def test_a_claim_that_proves_nothing_is_refused() -> None:
    slot = Slot()
    slot(pair.Joined())
    handshake = ViewerHandshake("s" * 22, slot.pairing.secret, os.urandom)
    (reply,) = slot(pair.Offered(handshake.offer()))
    host = SecureChannel()
    host.accept(reply.handshake, reply.offer)
    assert host.keys is not None
    slot.pairing.keys_made(host.keys)
    forged = DeviceKey("phone").claim(b"another transcript")
    assert [pair.Refuse] == kinds(slot(pair.Proved(DeviceClaim.parse(forged))))


def test_a_second_device_racing_the_first_aborts_both_and_rotates() -> None:
    slot = Slot()
    secret = slot.pairing.secret
    slot.connect(DeviceKey("phone"))
    slot(pair.Left())  # the first one's question is withdrawn, but its pairing was under way
    raced = slot.connect(DeviceKey("laptop"), secret)
    assert [pair.Withdraw, pair.Refuse, pair.Rotate] == kinds(raced)
    assert secret != slot.pairing.secret


def test_the_secret_expires_after_ten_minutes_and_the_url_changes() -> None:
    slot = Slot()
    secret = slot.pairing.secret
    slot.now = pair.PAIRING_LIFETIME - 1
    assert [] == slot(pair.Tick())
    slot.now = pair.PAIRING_LIFETIME
    assert [pair.Rotate] == kinds(slot(pair.Tick()))
    with pytest.raises(RemoteProtocolError, match="wrong pairing secret"):  # the old link's key never matches
        slot.connect(DeviceKey("phone"), secret)


def test_a_pairing_left_unanswered_expires_with_the_secret() -> None:
    slot = Slot()
    slot.connect(DeviceKey("phone"))
    slot.now = pair.PAIRING_LIFETIME
    assert [pair.Withdraw, pair.Refuse, pair.Rotate] == kinds(slot(pair.Tick()))


def test_revoking_the_connected_device_refuses_it_at_once() -> None:
    phone = DeviceKey("phone")
    slot = Slot(accept=True)
    assert pair.Admit in kinds(slot.connect(phone))
    assert [pair.Refuse] == kinds(slot(pair.Revoked(phone.id)))
    assert not slot.pairing.admitted


def test_every_phase_and_event_pair_is_handled_or_ignored() -> None:
    """A late event in any phase changes nothing it should not (no exception, no stray effects)."""
    for phase in pair.Phase:
        for event in (pair.Answered(True), pair.Tick()):
            slot = Slot()
            slot.pairing.phase = phase
            out = slot(event)
            if (phase, type(event)) not in pair.TRANSITIONS:
                assert [] == out and phase == slot.pairing.phase


def test_a_question_left_by_a_host_that_died_is_not_offered_to_devices_accept(tmp_path: Any) -> None:
    from tether.host.paired import STALE_REQUEST, PairingRequests

    requests = PairingRequests(tmp_path)
    claim = DeviceClaim.parse(DeviceKey("phone").claim(b"t"))
    requests.post("s" * 22, claim, "123456")
    assert ["123456"] == [r["code"] for r in requests.pending()]
    assert [] == requests.pending(now=time.time() + STALE_REQUEST + 1)
    assert [] == list((tmp_path / "pairing-requests").iterdir())


# -- taking over (one controlling device) --------------------------------------------------------


def candidate(**changes: Any) -> pair.Candidate:
    fields: dict[str, Any] = {"taking_over": True, "displaced": False, "paired": True, "accept_all": False,
                              "takeover": "ask"}  # fmt: skip
    return pair.Candidate(**(fields | changes))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, pair.Decision.ASK),  # a paired device taking over is asked all the same
        ({"paired": False}, pair.Decision.ASK),
        ({"takeover": "paired"}, pair.Decision.ADMIT),  # unless the user said so
        ({"takeover": "paired", "paired": False}, pair.Decision.ASK),  # never for a new device
        ({"displaced": True}, pair.Decision.ADMIT),  # the device just displaced takes control back
        ({"accept_all": True, "paired": False}, pair.Decision.ADMIT),
        ({"taking_over": False}, pair.Decision.ADMIT),  # no take-over: a paired device comes in
        ({"taking_over": False, "paired": False}, pair.Decision.ASK),  # a new device is paired at the terminal
    ],
)
def test_who_is_asked_and_who_is_admitted(changes: dict[str, Any], expected: pair.Decision) -> None:
    """The ADMISSION table: a take-over is asked even for a paired device, except as listed."""
    assert expected == pair.decide(candidate(**changes))[0]


class Devices:
    """Two paired devices, and the resume secrets their admitted connections left."""

    def __init__(self) -> None:
        self.phone, self.laptop = DeviceKey("phone"), DeviceKey("laptop")
        self.keys = {d.id: d.public_key for d in (self.phone, self.laptop)}

    def known(self, device_id: str) -> bytes | None:
        return self.keys.get(device_id)


def fresh_url(slot: Slot) -> None:
    """A new, unspent pairing secret (as after a rotation), so another paired device can offer it."""
    slot.pairing.secret, slot.pairing.secret_spent = os.urandom(32), False


def says(effects: list[Any]) -> list[str]:
    return [e.text for e in effects if isinstance(e, pair.Say)]


def test_a_take_over_by_a_paired_device_is_asked_and_the_terminal_names_both() -> None:
    devices = Devices()
    slot = Slot(known=devices.known)
    assert pair.Admit in kinds(slot.connect(devices.phone))
    assert ["phone" in t and "replaced" in t for t in says(slot(pair.Left(replaced=True)))] == [True]
    fresh_url(slot)
    asked = slot.connect(devices.laptop)
    assert [pair.Ask] == kinds(asked) and devices.phone.id == asked[0].replacing.id
    admitted = slot(pair.Answered(True))
    assert [pair.Say, pair.Admit] == kinds(admitted)
    assert [f"phone ({devices.phone.id}) was replaced by laptop ({devices.laptop.id})."] == says(admitted)


def test_remote_takeover_paired_admits_a_paired_device_at_once() -> None:
    devices = Devices()
    slot = Slot(known=devices.known)
    slot.pairing.takeover = "paired"
    slot.connect(devices.phone)
    slot(pair.Left(replaced=True))
    fresh_url(slot)
    assert [pair.Say, pair.Admit] == kinds(slot.connect(devices.laptop))
    with pytest.raises(ValueError, match="ask or paired"):
        pair.Pairing("s" * 22, os.urandom, devices.known, 0.0, takeover="always")


def test_the_displaced_device_takes_control_back_without_a_question() -> None:
    """After a confirmed take-over, the phone that lost control comes back (its resume secret) at once."""
    devices = Devices()
    slot = Slot(known=devices.known)
    slot.connect(devices.phone)
    phone_resume = slot.resume
    slot(pair.Left(replaced=True))
    fresh_url(slot)
    slot.connect(devices.laptop)
    slot(pair.Answered(True))
    slot(pair.Left(replaced=True))  # the phone asks to take back
    back = slot.connect(devices.phone, resume=phone_resume)
    assert [pair.Say, pair.Admit] == kinds(back) and "replaced by phone" in says(back)[0]


def test_a_refused_take_over_leaves_the_owner_free_to_take_back() -> None:
    """n refuses the newcomer (no new URL: it came with its own resume secret); the phone is back at once,
    also while the question is still open."""
    devices = Devices()
    slot = Slot(known=devices.known)
    slot.connect(devices.laptop)
    laptop_resume = slot.resume
    slot(pair.Left())
    fresh_url(slot)
    slot.connect(devices.phone)
    phone_resume = slot.resume
    slot(pair.Left(replaced=True))
    assert [pair.Ask] == kinds(slot.connect(devices.laptop, resume=laptop_resume))
    refused = slot(pair.Answered(False))
    assert [pair.Refuse] == kinds(refused) and "taking over was refused" in refused[0].reason
    slot(pair.Left())  # the host had the relay drop it
    back = slot.connect(devices.phone, resume=phone_resume)
    assert [pair.Admit] == kinds(back)
    # Taking back while a take-over question is open: withdrawn, and the phone is in control again.
    other = Slot(known=devices.known)
    other.connect(devices.phone)
    phone_resume = other.resume
    other(pair.Left(replaced=True))
    fresh_url(other)
    assert [pair.Ask] == kinds(other.connect(devices.laptop))
    assert [pair.Withdraw] == kinds(other(pair.Left(replaced=True)))
    back = other.connect(devices.phone, resume=phone_resume)
    assert [pair.Say, pair.Admit] == kinds(back) and "took control back" in says(back)[0]


def test_a_new_device_taking_over_with_a_fresh_link_is_paired_on_y() -> None:
    devices = Devices()
    slot = Slot(known=devices.known)
    slot.connect(devices.phone)
    slot(pair.Left(replaced=True))
    fresh_url(slot)
    stranger = DeviceKey("stranger")
    asked = slot.connect(stranger)
    assert [pair.Ask] == kinds(asked) and asked[0].replacing is not None
    assert [pair.Refuse, pair.Rotate] == kinds(slot(pair.Answered(False)))  # it used the link: a new one


def test_revoking_a_displaced_device_ends_its_right_to_take_back() -> None:
    devices = Devices()
    slot = Slot(known=devices.known)
    slot.connect(devices.phone)
    slot(pair.Left(replaced=True))
    slot(pair.Revoked(devices.phone.id))
    assert {} == slot.pairing.displaced


def test_a_spent_link_still_asks_to_take_over_but_admits_no_plain_join() -> None:
    """A second browser with the link the phone used: a plain join is refused; a take-over gets the question
    (never more without y), and a no gives the session a new link."""
    devices = Devices()
    slot = Slot(known=devices.known)
    secret = slot.pairing.secret
    slot.connect(devices.phone)
    phone_resume = slot.resume
    slot(pair.Left())
    assert [pair.RefuseOffer] == kinds(slot.connect(DeviceKey("stranger"), secret))
    slot(pair.Left())
    assert [pair.Admit] == kinds(slot.connect(devices.phone, resume=phone_resume))
    slot(pair.Left(replaced=True))
    asked = slot.connect(DeviceKey("stranger"), secret)
    assert [pair.Ask] == kinds(asked) and devices.phone.id == asked[0].replacing.id
    assert [pair.Refuse, pair.Rotate] == kinds(slot(pair.Answered(False)))
