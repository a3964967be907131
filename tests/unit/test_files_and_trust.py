"""The project boundary for fs/* and the workspace trust list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tether.errors import NotTrusted, OutsideProject
from tether.host.agent_process import agent_environment, resolve
from tether.host.files import ProjectFiles
from tether.host.trust import TrustStore


def test_paths_inside_the_project_are_served(tmp_path: Path) -> None:
    """Relative and absolute paths inside the root read and write."""
    files = ProjectFiles(tmp_path)
    files.write("sub/a.txt", "one\ntwo\nthree\n")
    assert "two\n" == files.read(str(tmp_path / "sub" / "a.txt"), line=2, limit=1)


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "sub/../../x"])
def test_paths_outside_are_refused(tmp_path: Path, path: str) -> None:
    """A path that leaves the project is refused before any I/O."""
    root = tmp_path / "project"
    root.mkdir()
    with pytest.raises(OutsideProject):
        ProjectFiles(root).write(path, "x")
    assert not (tmp_path / "outside.txt").exists()


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    """A symlink inside the project cannot point the agent outside it."""
    root = tmp_path / "project"
    root.mkdir()
    (tmp_path / "secret").write_text("key")
    os.symlink(tmp_path / "secret", root / "link")
    with pytest.raises(OutsideProject):
        ProjectFiles(root).read("link")


def test_trust_covers_subfolders_and_untrust_removes(tmp_path: Path) -> None:
    """Trusting a folder trusts what is below it; untrust takes it back."""
    store = TrustStore(tmp_path / "state" / "trust.json")
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    assert not store.is_trusted(project)
    with pytest.raises(NotTrusted, match="tether trust"):
        store.require(project)
    store.trust(project)
    assert store.is_trusted(project / "sub") and not store.is_trusted(tmp_path)
    assert store.untrust(project)
    assert not store.is_trusted(project)


def test_agent_environment_is_an_allow_list() -> None:
    """Provider keys and proxies pass; unrelated secrets do not."""
    source = {
        "PATH": "/bin",
        "HOME": "/h",
        "ANTHROPIC_API_KEY": "k",
        "OPENAI_BASE_URL": "u",
        "https_proxy": "p",
        "AWS_SECRET_ACCESS_KEY": "no",
        "GITHUB_TOKEN": "no",
        "BASH_FUNC_x%%": "() { :; }",
    }
    assert {"PATH": "/bin", "HOME": "/h", "ANTHROPIC_API_KEY": "k", "OPENAI_BASE_URL": "u", "https_proxy": "p"} == (
        agent_environment(source=source)
    )


def test_preset_environment_is_narrower() -> None:
    """A preset passes only its own provider's variables."""
    source = {"PATH": "/bin", "ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "o"}
    assert {"PATH": "/bin", "ANTHROPIC_API_KEY": "a"} == agent_environment(resolve("claude").env_prefixes, source)
    assert {"PATH": "/bin"} == agent_environment(resolve("demo").env_prefixes, source)


def test_agent_spec_parses_command_lines() -> None:
    """--agent takes demo or any command line."""
    assert "demo" == resolve("demo").name
    assert ("python3", "my agent.py", "--flag") == resolve('python3 "my agent.py" --flag').argv
