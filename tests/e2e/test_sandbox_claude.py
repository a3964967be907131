"""The real Claude Code under `tether rc` with `sandbox.default = true` (bubblewrap, then Landlock), on the fake API.

Claude Code edits natively, so only the sandbox binds it. It still works confined: its
model requests reach the fake through the host's egress proxy, and an approved Write in
the project lands; an approved Write outside the project does not reach the host's disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import IN_CI, require, start_rc, stop
from tests.e2e.test_claude_code import INSTALL_TIMEOUT, WAIT, claude_env, npm_cache, option_id, side_reply
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.model_server import Turn, call
from tether.config import Config
from tether.host import sandbox_run
from tether.testing import ViewerClient

__all__ = ["npm_cache"]  # the session fixture that installs Claude Code once

pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 120)


async def test_claude_code_works_confined(
    npm_cache: Path, project: Path, tether_env: dict[str, str], relay: str, tmp_path: Path
) -> None:
    """Under --sandbox Claude Code answers through the egress proxy; its Write lands inside, never outside."""
    mechanisms = [name for name in ("bwrap", "landlock") if sandbox_run.choose(name)[0] == name]
    require(bool(mechanisms), f"no sandbox mechanism works here: {sandbox_run.choose('auto')[1]}")
    if IN_CI:
        require(["bwrap", "landlock"] == mechanisms, f"both mechanisms must work in CI, not only {mechanisms}")
    config = Config(Path(tether_env["TETHER_CONFIG_DIR"]) / "config.toml")
    config.set("sandbox.default", "true")
    for mechanism in mechanisms:
        config.set("sandbox.mechanism", mechanism)
        inside, outside = project / f"hello-{mechanism}.txt", tmp_path / f"outside-{mechanism}.txt"
        script = [
            Turn(tool_calls=(call("Write", file_path=str(inside), content="hello from a sandbox\n"),)),
            Turn(tool_calls=(call("Write", file_path=str(outside), content="escaped\n"),)),
            Turn(text="Done."),
        ]
        async with FakeAnthropic(script, side=side_reply) as fake:
            run = start_rc(project, claude_env(tether_env, tmp_path / "home", npm_cache, fake), relay, agent="claude")
            try:
                async with ViewerClient(run.url) as viewer:
                    await viewer.prompt("Write the two files")
                    for _ in range(2):
                        approval = await viewer.wait_for(lambda v: v.pending_approval(), WAIT)
                        await viewer.decide(approval["id"], option_id(approval, "allow_once"))
                        await viewer.wait_for(lambda v, a=approval: v.entries[a["id"]].get("state") == "decided", WAIT)
                    await viewer.wait_for(lambda v: v.stop_reasons, WAIT)
                    assert any("Done." in t for t in viewer.texts("agent"))
            finally:
                stop(run.process)
        assert fake.model_requests(), f"{mechanism}: Claude Code reached its model API through the egress proxy"
        assert "hello from a sandbox\n" == inside.read_text(), mechanism
        assert not outside.exists(), mechanism
