"""Which agent modes and options approve tools by themselves, and where Remote Control moves an agent."""

from __future__ import annotations

from acp import schema

from tether.agents.presets import PRESETS
from tether.host.core.controls import Controls


def modes(current: str, *ids: str) -> schema.SessionModeState:
    return schema.SessionModeState(
        current_mode_id=current, available_modes=[schema.SessionMode(id=i, name=i.title()) for i in ids]
    )


def test_preset_modes_decide_for_known_agents() -> None:
    """Claude's acceptEdits and bypassPermissions approve by themselves; default asks."""
    controls = Controls(PRESETS["claude"])
    controls.load(modes("acceptEdits", "default", "acceptEdits", "plan", "bypassPermissions"), None)
    assert {"default": False, "acceptEdits": True, "plan": False, "bypassPermissions": True} == {
        m["id"]: m["self_approving"] for m in controls.entry()["modes"]["available"]
    }
    assert "default" == controls.asking_mode()


def test_codex_moves_to_read_only() -> None:
    """Codex's agent modes run commands without asking; read-only is where it asks."""
    controls = Controls(PRESETS["codex"])
    controls.load(modes("agent", "read-only", "agent", "agent-full-access"), None)
    assert "read-only" == controls.asking_mode()


def test_unknown_agents_use_every_known_self_approving_id() -> None:
    """For an agent without a preset, any id a preset knows as self-approving counts."""
    controls = Controls(None)
    controls.load(modes("yolo", "yolo", "careful"), None)
    assert (True, False) == (controls.is_self_approving("yolo"), controls.is_self_approving("careful"))
    assert "careful" == controls.asking_mode()


def test_no_asking_mode_is_none() -> None:
    """An agent whose every mode approves by itself offers nowhere to go."""
    controls = Controls(None)
    controls.load(modes("yolo", "yolo"), None)
    assert controls.asking_mode() is None


def test_mode_like_options_are_refused_for_self_approving_values() -> None:
    """A config option in the mode category is held to the same rule as modes."""
    option = schema.SessionConfigOptionSelect(
        id="mode",
        name="Mode",
        category="mode",
        current_value="default",
        options=[
            schema.SessionConfigSelectOption(value="default", name="Default"),
            schema.SessionConfigSelectOption(value="bypassPermissions", name="Bypass"),
        ],
        type="select",
    )
    controls = Controls(PRESETS["claude"])
    controls.load(None, [option])
    assert controls.refuses_option("mode", "bypassPermissions") and not controls.refuses_option("mode", "default")
    assert ["bypassPermissions"] == controls.entry()["options"][0]["self_approving_values"]
