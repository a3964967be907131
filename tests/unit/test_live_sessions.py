"""The user's live sessions on this machine: recorded by each host, told to a confirmed device only (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_relay_link import Viewer, link_in
from tether.errors import RemoteProtocolError
from tether.host.live import LiveSessions
from tether.protocol.messages import Sessions, parse

INFO = {"title": "shop", "agent": "claude", "cwd": "/home/me/shop", "protocol": 2}


def test_a_session_is_listed_by_the_others_until_it_is_withdrawn(tmp_path: Path) -> None:
    live = LiveSessions(tmp_path)
    live.publish("a" * 22, "https://relay.test/s/" + "a" * 22 + "#j=J&k=K", INFO)
    live.publish("b" * 22, "https://relay.test/s/" + "b" * 22 + "#j=J2&k=K2", {**INFO, "title": "blog"})
    assert [{"id": "b" * 22, "url": "https://relay.test/s/" + "b" * 22 + "#j=J2&k=K2", "title": "blog",
             "agent": "claude", "cwd": "/home/me/shop"}] == live.others("a" * 22)  # fmt: skip
    assert ["b" * 22, "a" * 22] == [s["id"] for s in live.others("c" * 22)]  # by folder, then title
    assert 0o600 == (tmp_path / "live" / f"{'a' * 22}.json").stat().st_mode & 0o777  # it holds a secret
    before = live.stamp()
    live.publish("b" * 22, "https://relay.test/s/" + "b" * 22 + "#j=J2&k=NEW", INFO)  # the URL rotated
    assert live.stamp() != before and live.others("a" * 22)[0]["url"].endswith("k=NEW")
    live.withdraw("b" * 22)
    assert [] == live.others("a" * 22)


def test_a_session_whose_host_died_is_dropped_and_bad_files_are_skipped(tmp_path: Path) -> None:
    live = LiveSessions(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "live"
    folder.mkdir()
    record = {"id": "d" * 22, "url": "u", "title": "t", "agent": "a", "cwd": "c", "pid": int(dead.stdout)}
    (folder / f"{'d' * 22}.json").write_text(json.dumps(record))
    (folder / f"{'e' * 22}.json").write_text("{not json")
    (folder / "short.json").write_text(json.dumps({**record, "id": "short", "pid": os.getpid()}))
    (folder / f"{'f' * 22}.json").write_text(json.dumps({**record, "id": "other", "pid": os.getpid()}))
    assert [] == live.others("a" * 22)
    assert not (folder / f"{'d' * 22}.json").exists()  # its host is gone


def test_the_sessions_message_takes_only_objects_of_strings_with_an_id_and_url() -> None:
    message = Sessions(sessions=[{"id": "x", "url": "https://relay.test/s/x#j=1", "title": "t"}])
    assert message == parse(message.serialize())
    for bad in ([{"id": "x"}], [{"id": "x", "url": "u", "title": 3}], ["x"]):
        with pytest.raises(RemoteProtocolError):
            parse(json.dumps({"kind": "sessions", "sessions": bad}).encode())


def _admit(link: Any, asked: list[Any]) -> Viewer:
    link.questions.ask = lambda question, answer: asked.append(answer)
    viewer = Viewer(link)
    viewer.hello()
    if asked:
        asked.pop()(True)
    assert link.viewer_ready
    return viewer


def _told(link: Any) -> list[Any]:
    link._outbox.clear()
    link._tell_live()
    return [json.loads(payload)["sessions"] for payload, _ in link._outbox if b'"kind":"sessions"' in payload]


async def test_a_confirmed_device_is_told_the_other_sessions_and_again_when_they_change(tmp_path: Path) -> None:
    _, link = link_in(tmp_path, accept=False)
    link._publish()  # this session itself is never in its own list
    other = LiveSessions(tmp_path)
    other.publish("o" * 22, "http://127.0.0.1:1/s/" + "o" * 22 + "#j=J&k=K", INFO)
    assert [] == _told(link)  # nobody admitted yet: nothing goes out
    _admit(link, [])
    assert [["o" * 22]] == [[s["id"] for s in told] for told in _told(link)]
    assert [] == _told(link)  # unchanged: not sent again
    other.withdraw("o" * 22)
    assert [[]] == _told(link)
    await link.close()
    assert [] == LiveSessions(tmp_path).others("z" * 22)  # a closed session withdrew itself


async def test_a_device_admitted_by_accept_device_is_told_nothing(tmp_path: Path) -> None:
    _, link = link_in(tmp_path, accept=True)
    LiveSessions(tmp_path).publish("o" * 22, "http://127.0.0.1:1/s/" + "o" * 22 + "#j=J&k=K", INFO)
    _admit(link, [])
    assert [] == _told(link)
