"""Files and images with a prompt (protocol/attachments.py and the core): bounded, only what the agent takes."""

from __future__ import annotations

import base64
from typing import Any

from tests.unit.test_core_session import Driver, of
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.protocol import attachments
from tether.protocol.messages import Prompt

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(60)).decode()


def item(name: str = "shot.png", mime: str = "image/png", data: str = PNG) -> dict[str, Any]:
    return {"name": name, "mime": mime, "data": data}


def test_parse_takes_well_formed_files_and_refuses_the_rest_in_words() -> None:
    (one,) = attachments.parse([item()])  # type: ignore[misc]
    assert ("shot.png", "image/png", 68, attachments.IMAGE) == (one.name, one.mime, len(one.data), one.kind)
    assert () == attachments.parse(None)
    big = base64.b64encode(bytes(attachments.MAX_BYTES + 1)).decode()
    for bad, words in (
        ([item()] * (attachments.MAX_COUNT + 1), "at most"),
        ([{"name": "x"}], "exactly"),
        ([item(name="a\nb")], "printable"),
        ([item(mime="not a type")], "media type"),
        ([item(data="***")], "base64"),
        ([item(data=big)], "MiB"),
        ("not a list", "at most"),
    ):
        refused = attachments.parse(bad)
        assert isinstance(refused, str) and words in refused, (bad, refused)


def ready(accepts: frozenset[str]) -> Driver:
    drive = Driver()
    drive(ev.SessionOpened(can_load=True, accepts=accepts))
    return drive


def test_a_prompt_with_an_image_starts_a_turn_with_it_and_the_transcript_keeps_no_bytes() -> None:
    drive = ready(frozenset({attachments.IMAGE, attachments.FILE}))
    out = drive(ev.FromScreen("terminal", Prompt(text="look", attachments=[item()])))
    (turn,) = of(fx.StartTurn, out)
    assert "look" == turn.text and ["shot.png"] == [a.name for a in turn.attachments]
    (user,) = [e for e in drive.core.transcript.entries.values() if e.get("role") == "user"]
    assert [{"name": "shot.png", "mime": "image/png", "size": 68}] == user["attachments"]
    assert PNG not in str(drive.core.snapshot())


def test_what_the_agent_does_not_take_is_refused_and_nothing_starts() -> None:
    drive = ready(frozenset({attachments.FILE}))
    out = drive(ev.FromScreen("viewer", Prompt(text="look", attachments=[item()])))
    assert [] == of(fx.StartTurn, out)
    notes = [s.message.entry["text"] for s in of(fx.Show, out) if s.to == "viewer"]
    assert any("does not take shot.png" in n for n in notes)


def test_the_agents_capabilities_reach_the_viewer() -> None:
    drive = ready(frozenset({attachments.IMAGE}))
    assert ["image"] == drive.core.snapshot().session["accepts"]
