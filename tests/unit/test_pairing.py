"""The admission rules (host/pairing.py), without sockets: the pairing secret's life, races, revocation."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from tether.errors import RemoteProtocolError
from tether.host import pairing as pair
from tether.protocol.crypto import ViewerHandshake
from tether.protocol.secure import SecureChannel
from tether.protocol.signing import DeviceClaim, DeviceKey


class Slot:
    """A Pairing with a clock, and a viewer that runs the handshake against it."""

    def __init__(self, known: Callable[[str], bytes | None] = lambda _id: None, accept: bool = False) -> None:
        self.now = 0.0
        self.pairing = pair.Pairing("s" * 22, os.urandom, known, self.now, accept)
        self.effects: list[Any] = []

    def __call__(self, event: Any) -> list[Any]:
        out = self.pairing.handle(event, self.now)
        self.effects += out
        return out

    def connect(self, device: DeviceKey, secret: bytes | None = None) -> list[Any]:
        """A viewer joins, offers, and proves ``device``: the effects of its proof."""
        self(pair.Joined())
        handshake = ViewerHandshake("s" * 22, secret or self.pairing.secret, os.urandom)
        (reply,) = self(pair.Offered(handshake.offer()))
        if not isinstance(reply, pair.Reply):
            return [reply]
        host = SecureChannel()
        frame = host.accept(reply.handshake, reply.offer)
        assert host.keys is not None
        self.pairing.keys_made(host.keys)
        keys = SecureChannel().take_reply(handshake, frame)  # the viewer checks the host's confirmation
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
