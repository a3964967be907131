"""The project boundary for fs/* and the workspace trust list."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tether.errors import FileRefused, FileTooLarge, NotARegularFile, NotTrusted, OutsideProject
from tether.host import files as files_module
from tether.host.agent_process import AgentSpec, agent_environment, resolve, spawn
from tether.host.files import MAX_READ_BYTES, ProjectFiles
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


def test_write_does_not_follow_a_planted_temporary_symlink(tmp_path: Path) -> None:
    """A symlink at the old temporary name cannot redirect a write outside the project."""
    root = tmp_path / "project"
    root.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    os.symlink(outside, root / ".notes.md.tether-tmp")
    ProjectFiles(root).write("notes.md", "new")
    assert ("keep", "new") == (outside.read_text(), (root / "notes.md").read_text())


@pytest.mark.parametrize("path", [".", "", "sub/.."])
def test_writing_the_project_folder_itself_is_refused(tmp_path: Path, path: str) -> None:
    """The root is a folder, not a file: a write to it is refused and leaves nothing behind."""
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)
    files = ProjectFiles(root)
    for name in (path, str(root)):
        with pytest.raises(NotARegularFile, match="project folder"):
            files.write(name, "x")
    assert ["project"] == sorted(p.name for p in tmp_path.iterdir())
    assert ["sub"] == sorted(p.name for p in root.iterdir())


def test_write_refuses_a_parent_swapped_for_a_symlink_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder replaced by a link out of the project after the check is caught before the rename."""
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    original = files_module._write_temporary

    def swap_then_write(directory: int, name: str, content: str, mode: int | None) -> str:
        temporary = original(directory, name, content, mode)
        (root / "sub").rename(root / "moved")
        os.symlink(outside, root / "sub")
        return temporary

    monkeypatch.setattr(files_module, "_write_temporary", swap_then_write)
    with pytest.raises(OutsideProject):
        ProjectFiles(root).write("sub/a.txt", "x")
    assert ([], []) == (list(outside.iterdir()), list((root / "moved").iterdir()))


def test_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A write to a folder is refused and leaves no temporary file behind."""
    (tmp_path / "dir").mkdir()
    with pytest.raises(NotARegularFile):
        ProjectFiles(tmp_path).write("dir", "x")
    assert ["dir"] == sorted(p.name for p in tmp_path.iterdir())


def test_write_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    """Rewriting an executable script keeps it executable."""
    script = tmp_path / "run.sh"
    script.write_text("old")
    script.chmod(0o750)
    ProjectFiles(tmp_path).write("run.sh", "new")
    assert (0o750, "new") == (script.stat().st_mode & 0o777, script.read_text())


def test_reading_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe in the project is refused at once instead of hanging the read."""
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NotARegularFile, match="pipe"):
        ProjectFiles(tmp_path).read("pipe")


@pytest.mark.parametrize("path", [".", "sub"])
def test_reading_a_folder_is_refused(tmp_path: Path, path: str) -> None:
    """A folder is not a file to read."""
    (tmp_path / "sub").mkdir()
    with pytest.raises(NotARegularFile):
        ProjectFiles(tmp_path).read(path)


def test_reading_a_device_is_refused() -> None:
    """A device node is refused, never opened."""
    files = ProjectFiles(Path("/dev"))
    with pytest.raises(NotARegularFile):
        files.read("/dev/zero")


def test_reading_above_the_limit_is_refused(tmp_path: Path) -> None:
    """A file larger than MAX_READ_BYTES is refused; one of exactly that size is served."""
    with (tmp_path / "big").open("wb") as big:
        big.truncate(MAX_READ_BYTES + 1)
    with pytest.raises(FileTooLarge, match="10 MiB"):
        ProjectFiles(tmp_path).read("big")
    os.truncate(tmp_path / "big", MAX_READ_BYTES)
    assert MAX_READ_BYTES == len(ProjectFiles(tmp_path).read("big"))


def test_reading_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    """A missing file still raises FileNotFoundError, so callers can answer resource_not_found."""
    with pytest.raises(FileNotFoundError):
        ProjectFiles(tmp_path).read("nope.txt")
    assert ProjectFiles(tmp_path).read_if_exists("nope.txt") is None


def test_refusals_share_one_base(tmp_path: Path) -> None:
    """OutsideProject, NotARegularFile and FileTooLarge are all FileRefused, so callers catch one class."""
    assert all(issubclass(cls, FileRefused) for cls in (OutsideProject, NotARegularFile, FileTooLarge))


def test_inside_tells_whether_a_path_stays_in_the_project(tmp_path: Path) -> None:
    """inside() is resolve() as a yes/no, symlinks followed."""
    root = tmp_path / "project"
    root.mkdir()
    os.symlink(tmp_path, root / "up")
    files = ProjectFiles(root)
    assert [True, True, True, False, False, False] == [
        files.inside(p) for p in ("a.txt", str(root), "new/dir/b", "../x", "/etc/passwd", "up/x")
    ]


@pytest.mark.parametrize("existing", [False, True])
async def test_agent_log_is_private(tmp_path: Path, existing: bool) -> None:
    """The agent's stderr log is readable by its owner only, also when an older log was world-readable."""
    log = tmp_path / "logs" / "agent.log"
    if existing:
        log.parent.mkdir()
        log.write_text("before\n")
        log.chmod(0o644)
    spec = AgentSpec(name="t", argv=(sys.executable, "-c", "import sys; sys.stderr.write('said\\n')"))
    process = await spawn(spec, tmp_path, log)
    await process.communicate()
    expected = ("before\n" if existing else "") + "said\n"
    assert (0o600, expected) == (log.stat().st_mode & 0o777, log.read_text())
