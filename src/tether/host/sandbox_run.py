"""Running confined: probing the mechanism, spawning under it, the egress proxy.

The plans come from ``host/sandbox.py`` (pure); this module only carries them out.

Calling contract: ``check()`` raises SandboxUnavailable (the reason, then what to do)
where no mechanism works, before anything starts. ``Sandbox(project).spawn(argv, env,
...)`` starts the agent confined and serves its egress endpoints from the host until the
process exits; ``Sandbox.command(argv, env)`` confines one of the agent's commands (no
egress: commands get no network at all).

The egress proxy: on Linux the helper inside the sandbox binds one loopback listener
per endpoint in the sandbox's network namespace and sends the listening sockets to the
host over an inherited socket pair; the host accepts on them, so every connection the
agent opens to 127.0.0.1:inside_port is accepted here and piped to the one upstream
host and port of that listener, and to nothing else. On macOS and under Landlock (no
network namespace) the host binds the listeners on its own loopback, and the profile or
the Landlock rules allow connecting to those ports only.

Mechanisms (``sandbox.mechanism``): bubblewrap first, Landlock where bubblewrap cannot
create its namespaces (``choose``); each is probed once per process.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tether.errors import UserError
from tether.host import sandbox, seccomp
from tether.paths import config_dir, state_dir

START_TIMEOUT = 60.0  # seconds for the helper to hand over its listeners
CONNECT_TIMEOUT = 30.0
CHUNK = 64 * 1024


class SandboxUnavailable(UserError):
    """Run without --sandbox, or fix what the message names (bubblewrap: Debian/Ubuntu package `bubblewrap`); `tether doctor` shows what works here."""  # noqa: E501


MECHANISMS = ("auto", "bwrap", "landlock")  # sandbox.mechanism; auto: bwrap, else Landlock


def mechanism() -> str | None:
    """The sandbox tool this platform uses first: ``bwrap`` on Linux, ``sandbox-exec`` on macOS."""
    if sys.platform.startswith("linux"):
        return "bwrap"
    if sys.platform == "darwin":
        return "sandbox-exec"
    return None


@functools.cache
def _bwrap() -> tuple[bool, str]:
    path = shutil.which("bwrap")
    if path is None:
        return False, "bwrap is not installed (Debian/Ubuntu package: bubblewrap)"
    try:
        target = seccomp.abi()
    except seccomp.UnsupportedArchitecture as exc:
        return False, str(exc)
    read = _data_fd(seccomp.compile_filter(target))
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--cap-drop", "ALL",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--seccomp", str(read),
            "--", sys.executable, "-I", "-S", "-c", "pass"]  # fmt: skip
    try:
        result = subprocess.run(argv, pass_fds=(read,), capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap did not run: {exc}"
    finally:
        os.close(read)
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").strip().splitlines()
        return False, "bubblewrap cannot create its namespaces here: " + (said[-1] if said else "no reason given")
    return True, f"{path} (every namespace unshared) with a seccomp filter that denies new Unix sockets"


@functools.cache
def _landlock() -> tuple[bool, str]:
    if not sys.platform.startswith("linux"):
        return False, "Landlock is Linux only"
    try:
        seccomp.abi()
    except seccomp.UnsupportedArchitecture as exc:
        return False, str(exc)
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if version < 0:
        return False, "Landlock is not enabled in this kernel"
    if version < 4:
        return False, f"Landlock ABI {version} has no network rules (ABI 4, Linux 6.7, is needed)"
    return True, (f"Landlock ABI {version} with a seccomp filter that allows TCP sockets only "
                  "(no namespaces: .git stays writable, see docs/threat-model.md)")  # fmt: skip


def choose(preference: str | None = None) -> tuple[str | None, str]:
    """The mechanism ``--sandbox`` uses here (None if none works) and one line saying how or why not.

    ``preference`` is ``sandbox.mechanism`` (default: the config file's, ``auto``).
    """
    if preference is None:
        from tether.config import Config

        preference = Config().get("sandbox.mechanism") or "auto"
    if sys.platform == "darwin":
        path = shutil.which("sandbox-exec")
        if path is None:
            return None, "sandbox-exec is not installed"
        return "sandbox-exec", f"{path} with a profile generated by tether"
    if not sys.platform.startswith("linux"):
        return None, f"no sandbox mechanism is known for {sys.platform}"
    reasons = []
    for name, probe in (("bwrap", _bwrap), ("landlock", _landlock)):
        if preference not in ("auto", name):
            continue
        ok, detail = probe()
        if ok:
            return name, detail
        reasons.append(detail)
    return None, "; ".join(reasons)


def availability() -> tuple[bool, str]:
    """Whether ``--sandbox`` works here, and one line saying how or why not (each mechanism probed once)."""
    chosen, detail = choose()
    return chosen is not None, detail


def check() -> None:
    """Raise SandboxUnavailable, saying why, unless the sandbox works here."""
    ok, detail = availability()
    if not ok:
        raise SandboxUnavailable(f"--sandbox cannot confine the agent here: {detail}.")


def _interpreter_folders(private: Sequence[Path]) -> tuple[Path, ...]:
    """The interpreter's folders that a private folder would hide (the helper runs with it), its virtual
    environment included (tether installed in a venv under /tmp or the home folder)."""
    folders = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    folders.add(Path(os.path.realpath(sys.executable)).parent)
    folders.add(Path(__file__).resolve().parents[2])  # tether itself (an editable install's source folder)
    return tuple(f for f in sorted(folders) if any(f.is_relative_to(p) for p in private))


def _argv_folders(argv: Sequence[str]) -> list[Path]:
    """The folders the program ``argv`` runs from: for each absolute path in it (the program found on PATH
    included), its venv, its package's whole ``node_modules`` tree, or else its own folder."""
    words = list(argv)
    if words and not words[0].startswith("/") and (found := shutil.which(words[0])):
        words[0] = found
    folders = []
    for word in words:
        if word.startswith("/") and Path(word).exists():
            folder = Path(word).resolve().parent
            venv = next((p for p in (folder, *folder.parents) if (p / "pyvenv.cfg").exists()), None)
            tops = reversed((folder, *folder.parents))
            modules = next((p.parent for p in tops if p.name == "node_modules"), None)
            folders += [venv or modules or folder, Path(word).parent]
    return folders


def _program_folders(argv: Sequence[str], private: Sequence[Path]) -> tuple[Path, ...]:
    """The folders of ``argv``'s program that a private folder (/tmp, the home folder) would hide."""
    folders = dict.fromkeys(_argv_folders(argv))
    return tuple(f for f in folders if any(f.is_relative_to(p) for p in private))


class Sandbox:
    """Confinement to one project (see module doc)."""

    def __init__(self, project: Path, env: Mapping[str, str] | None = None, mechanism: str | None = None) -> None:
        self.project = project.resolve()
        self.home = sandbox.home_folder(os.environ if env is None else env)
        self.hidden = tuple(dict.fromkeys(p.resolve() for p in (config_dir(), state_dir())))
        if (inside := sandbox.exposed(self.project, self.home.resolve(), self.hidden)) is not None:
            raise SandboxUnavailable(
                f"--sandbox keeps the agent in its project folder, and {self.project} holds {inside}, "
                "which the sandbox exists to hide. Run tether in the project's own folder"
            )
        self.private = [*map(Path, sandbox.PRIVATE_FOLDERS), self.home, *self.hidden]
        self.readable = _interpreter_folders(self.private)
        self.python = os.path.realpath(sys.executable)
        self.bwrap = shutil.which("bwrap") or "bwrap"
        self.mechanism = choose(mechanism)[0]  # None: as sandbox.mechanism says
        self._private: Path | None = None  # Landlock: a private home and temp folder, made on first use
        self._tasks: set[asyncio.Task[Any]] = set()

    def confinement(
        self, env: Mapping[str, str], egress: sandbox.Egress, argv: Sequence[str] = ()
    ) -> sandbox.Confinement:
        readable = tuple(dict.fromkeys((*self.readable, *_program_folders(argv, self.private))))
        return sandbox.Confinement(
            project=self.project,
            home=self.home,
            env=sandbox.confined_env(env, self.home, egress),
            hidden=self.hidden,
            readable=readable,
            egress=egress,
        )

    def command(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
    ) -> tuple[list[str], dict[str, str], tuple[int, ...]]:
        """One of the agent's commands, confined with no way out: argv, environment, and fds to pass then close."""
        check()
        confinement = self.confinement(env, sandbox.Egress())
        if sys.platform == "darwin":
            profile = sandbox.macos_profile(self.project, self.home, Path("/tmp"), self.hidden, ())
            return ["sandbox-exec", "-p", profile, *argv], dict(confinement.env), ()
        if self.mechanism == "landlock":
            return self._landlock_command(argv, confinement, ()), self._landlock_env(confinement), ()
        filter_fd = _data_fd(seccomp.compile_filter())
        return (
            sandbox.bwrap_argv(confinement, argv, filter_fd, cwd=cwd, bwrap=self.bwrap),
            dict(confinement.env),
            (filter_fd,),
        )

    async def spawn(self, argv: Sequence[str], env: Mapping[str, str], **kwargs: Any) -> asyncio.subprocess.Process:
        """Start ``argv`` confined, with its egress served from here until it exits."""
        check()
        if os.path.basename(argv[0]) == "npx":
            installed = npx_installed(argv, env)
            if installed is None:
                raise SandboxUnavailable(
                    f"{shlex.join(argv)} is not installed yet, and npx cannot install it inside the sandbox "
                    "(no network, its cache read-only). Run the agent once without --sandbox to install it"
                )
            argv = installed
        egress = sandbox.egress(env)
        confinement = self.confinement(env, egress, argv)
        if sys.platform == "darwin" or self.mechanism == "landlock":
            return await self._spawn_with_host_listeners(argv, confinement, kwargs)
        ours, theirs = socket.socketpair()
        fds = (_data_fd(seccomp.compile_filter()), _data_fd(egress.hosts_file().encode()), theirs.fileno())
        command = sandbox.helper_argv(self.python, theirs.fileno(), egress, argv)
        try:
            # bwrap's own process (pid 1 inside) gets the clean environment too: /proc/1/environ is readable there.
            process = await asyncio.create_subprocess_exec(
                *sandbox.bwrap_argv(confinement, command, fds[0], fds[1], bwrap=self.bwrap),
                env=dict(confinement.env),
                pass_fds=fds,
                **kwargs,
            )
        finally:
            for fd in fds[:2]:
                os.close(fd)
            theirs.close()  # the helper holds the only other end: EOF here if it fails
        try:
            listeners = await asyncio.wait_for(asyncio.to_thread(_receive, ours, len(egress.endpoints)), START_TIMEOUT)
        except (OSError, TimeoutError):
            listeners = None
        finally:
            ours.close()
        if listeners is None or len(listeners) != len(egress.endpoints):
            for listener in listeners or ():
                listener.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise SandboxUnavailable("the sandbox did not start (bubblewrap's own message is in the agent's log)")
        await self._serve(process, zip(listeners, egress.endpoints, strict=True))
        return process

    async def _spawn_with_host_listeners(
        self, argv: Sequence[str], confinement: sandbox.Confinement, kwargs: dict[str, Any]
    ) -> asyncio.subprocess.Process:
        """macOS and Landlock: no network namespace, so the egress listeners are the host's own loopback ports."""
        listeners = []
        env = self._landlock_env(confinement) if self.mechanism == "landlock" else dict(confinement.env)
        for endpoint in confinement.egress.endpoints:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            listeners.append(listener)
            port = listener.getsockname()[1]
            for name, value in env.items():  # the sandbox shares the host's loopback: its own port
                env[name] = value.replace(f":{endpoint.inside_port}", f":{port}")
        ports = [listener.getsockname()[1] for listener in listeners]
        if self.mechanism == "landlock":
            command = self._landlock_command(argv, confinement, ports)
        else:
            temp = Path(env.get("TMPDIR") or "/tmp")
            command = ["sandbox-exec", "-p", sandbox.macos_profile(self.project, self.home, temp, self.hidden, ports),
                       *argv]  # fmt: skip
        process = await asyncio.create_subprocess_exec(*command, env=env, cwd=self.project, **kwargs)
        await self._serve(process, zip(listeners, confinement.egress.endpoints, strict=True))
        return process

    def _private_folders(self) -> Path:
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix="tether-sandbox-"))
            (self._private / "home").mkdir()
            (self._private / "tmp").mkdir()
            atexit.register(shutil.rmtree, self._private, True)
        return self._private

    def _landlock_env(self, confinement: sandbox.Confinement) -> dict[str, str]:
        """No mount namespace: the private home and temp folder are real folders, made for this session."""
        private = self._private_folders()
        env = dict(confinement.env)
        env["HOME"], env["TMPDIR"] = str(private / "home"), str(private / "tmp")
        return env

    def _landlock_command(
        self, argv: Sequence[str], confinement: sandbox.Confinement, ports: Sequence[int]
    ) -> list[str]:
        # Python agents run with this interpreter and may import tether itself (demo, builtin): its import path.
        programs = [Path(sys.prefix), Path(sys.base_prefix), Path(self.python).parent]
        programs += [Path(p) for p in sys.path if p.startswith("/") and Path(p).is_dir() and not
                     (Path(p) == self.home or self.home.is_relative_to(p))]  # fmt: skip
        programs += _argv_folders(argv)  # the agent's own program and script folders (a venv: the whole venv)
        for entry in confinement.env:
            if entry[0] == "PATH":
                programs += [Path(p) for p in entry[1].split(":") if p.startswith("/") and Path(p) != self.home]
        private = self._private_folders()
        plan = sandbox.landlock_plan(self.project, (private,), programs, ports)
        tcp_only = seccomp.compile_filter(tcp_only=True).hex()
        return sandbox.landlock_argv(self.python, plan, tcp_only, argv)

    async def _serve(self, process: asyncio.subprocess.Process, pairs: Any) -> None:
        servers = []
        for listener, endpoint in pairs:
            handler = functools.partial(_forward, endpoint)
            servers.append(await asyncio.start_server(handler, sock=listener))

        async def close_when_done() -> None:
            with contextlib.suppress(Exception):
                await process.wait()
            for server in servers:
                server.close()

        task = asyncio.get_running_loop().create_task(close_when_done())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def npx_installed(argv: Sequence[str], env: Mapping[str, str]) -> list[str] | None:
    """``npx -y PACKAGE@VERSION ARGS``, as the installed program npx would run, or None.

    npx needs to write to its cache even to run what it installed before, and the cache is
    outside the project: the sandbox keeps it read-only. So an agent started through npx
    (the Claude Code, Codex, Gemini and OpenCode presets) runs confined as the program npx
    installed, found in ``_npx/*/package.json`` of the cache, read-only like the rest of /.
    """
    if not argv or os.path.basename(argv[0]) != "npx":
        return None
    words = list(argv[1:])
    while words and words[0].startswith("-"):
        words.pop(0)
    if not words:
        return None
    spec, rest = words[0], words[1:]
    for manifest in sorted(_npm_cache(env).glob("_npx/*/package.json")):
        try:
            if json.loads(manifest.read_text()).get("_npx", {}).get("packages") != [spec]:
                continue
            name = spec.rsplit("@", 1)[0] if spec.rfind("@") > 0 else spec
            package = manifest.parent / "node_modules" / name
            bins = json.loads((package / "package.json").read_text()).get("bin")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(bins, str):
            return [str(package / bins), *rest]
        if isinstance(bins, dict) and bins:
            chosen = bins.get(name.rsplit("/", 1)[-1]) or next(iter(bins.values()))
            return [str(package / chosen), *rest]
    return None


def _npm_cache(env: Mapping[str, str]) -> Path:
    """npm's cache folder for ``env``: its variable, else ``cache=`` in ``$HOME/.npmrc``, else ``~/.npm``."""
    home = Path(env.get("HOME") or Path.home())
    configured = env.get("npm_config_cache") or env.get("NPM_CONFIG_CACHE")
    if not configured:
        try:
            lines = (home / ".npmrc").read_text().splitlines()
        except OSError:
            lines = []
        configured = next((line.split("=", 1)[1].strip() for line in lines if line.strip().startswith("cache=")), None)
    return Path(configured).expanduser() if configured else home / ".npm"


def _data_fd(data: bytes) -> int:
    """A descriptor to read ``data`` from (a pipe; the data is small enough for its buffer)."""
    read, write = os.pipe()
    with os.fdopen(write, "wb") as out:
        out.write(data)
    return read


def _receive(channel: socket.socket, count: int) -> list[socket.socket] | None:
    """The listening sockets the helper sends (blocking; run in a thread); None if it sent nothing."""
    channel.settimeout(START_TIMEOUT)
    data, fds, _, _ = socket.recv_fds(channel, 64, max(count, 1))
    listeners = [socket.socket(fileno=fd) for fd in fds]
    return listeners if data == b"egress" else None


async def _forward(endpoint: sandbox.Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Pipe one connection from inside the sandbox to the endpoint's upstream, both ways."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            up_reader, up_writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    except (OSError, TimeoutError):
        writer.close()
        return
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        writer.close()
        up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of input, then half-close; a broken side closes the other (its reader ends too)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()
