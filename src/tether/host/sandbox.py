"""The sandbox (``--sandbox``), as pure functions: what to confine and the command that does it.

DESIGN.md rule 6. The agent process and every command it runs are confined to the
project folder, with no way out to the network but an allow-list proxy in the host.
Nothing here starts a process or opens a socket: ``host/sandbox_run.py`` does, from the
plans made here. The rules, one per function:

- **What the agent may reach** (:func:`egress`): the model API it was configured for and
  nothing else. Each ``*_BASE_URL`` in its environment (or the provider's public API when
  only its key is set) becomes one :class:`Endpoint`; the URL the agent sees is rewritten
  to a loopback port inside the sandbox, and a host name stays the same (a generated
  ``/etc/hosts`` points it at 127.0.0.1), so TLS still checks the real name end to end.
- **Linux** (:func:`bwrap_argv`): bubblewrap with every namespace unshared (user, pid,
  net, ipc, uts, cgroup), all capabilities dropped, ``/`` read-only, the project
  writable and its ``.git`` read-only, a private ``/tmp`` and home, tether's own config
  and state folders hidden, a fresh ``/proc`` (no other process's environment is
  visible), a clean environment, and the seccomp filter of ``host/seccomp.py``. In the new
  network namespace only loopback exists; the egress listeners are bound there by a
  small helper (:data:`HELPER_SOURCE`) that hands them to the host over an inherited
  socket and then becomes the agent.
- **macOS** (:func:`macos_profile`): a ``sandbox-exec`` profile that denies by default,
  reads everything but the home folder and tether's own folders, writes only the
  project (not ``.git``) and a private temp folder, and connects only to the proxy's
  loopback ports; Unix sockets are denied.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Provider keys whose agents reach a public API when no base URL is set: (key, base URL variable, default URL).
PUBLIC_APIS = (
    ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
    ("OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
)
FIRST_SPARE_PORT = 20000  # inside ports for endpoints whose own port is privileged or taken
# Folders replaced by an empty tmpfs inside the sandbox (besides the home folder).
PRIVATE_FOLDERS = ("/tmp", "/var/tmp", "/run", "/home", "/root", "/mnt", "/media")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One way out: the agent connects to 127.0.0.1:``inside_port``; the host dials ``host``:``port``."""

    host: str
    port: int
    inside_port: int


@dataclass(frozen=True, slots=True)
class Egress:
    """The endpoints, the agent's rewritten variables and the names ``/etc/hosts`` maps to loopback."""

    endpoints: tuple[Endpoint, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    names: tuple[str, ...] = ()

    def hosts_file(self) -> str:
        """The ``/etc/hosts`` of the sandbox."""
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost"]
        lines += [f"127.0.0.1 {name}" for name in self.names]
        return "\n".join(lines) + "\n"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def egress(env: Mapping[str, str]) -> Egress:
    """The allow-list for an agent with environment ``env`` (see module doc)."""
    urls = {name: value for name, value in env.items() if name.endswith("_BASE_URL") and value}
    for key, variable, default in PUBLIC_APIS:
        if env.get(key) and variable not in urls:
            urls[variable] = default
    endpoints: dict[tuple[str, int], Endpoint] = {}
    used: set[int] = set()
    rewritten: list[tuple[str, str]] = []
    names: list[str] = []
    for variable in sorted(urls):
        parts = urlsplit(urls[variable])
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        if (host, port) not in endpoints:
            inside = port if port >= 1024 and port not in used else _spare(used)
            used.add(inside)
            endpoints[(host, port)] = Endpoint(host, port, inside)
        inside = endpoints[(host, port)].inside_port
        # An address is replaced by loopback; a name is kept (TLS checks it) and mapped to loopback.
        shown = "127.0.0.1" if _is_ip(host) else host
        if not _is_ip(host) and host not in names and host != "localhost":
            names.append(host)
        netloc = f"{parts.username}@" if parts.username else ""
        rewritten.append((variable, urlunsplit(parts._replace(netloc=f"{netloc}{shown}:{inside}"))))
    return Egress(tuple(endpoints.values()), tuple(rewritten), tuple(names))


def _spare(used: set[int]) -> int:
    port = FIRST_SPARE_PORT
    while port in used:
        port += 1
    return port


@dataclass(frozen=True, slots=True)
class Confinement:
    """What one confined process may see: the project, the hidden folders, its environment, its ways out."""

    project: Path
    home: Path
    env: tuple[tuple[str, str], ...]
    hidden: tuple[Path, ...] = ()  # tether's config and state folders, and other secrets
    readable: tuple[Path, ...] = ()  # folders under a private one that must stay visible (the interpreter)
    egress: Egress = field(default_factory=Egress)


def _under(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def bwrap_argv(
    confinement: Confinement,
    command: Iterable[str],
    seccomp_fd: int,
    hosts_fd: int | None = None,
    exists: Mapping[str, bool] | None = None,
    cwd: Path | None = None,
    bwrap: str = "bwrap",
) -> list[str]:
    """The ``bwrap`` command line that runs ``command`` confined (see module doc).

    ``seccomp_fd`` and ``hosts_fd`` are descriptors the caller passes to bwrap, holding
    ``seccomp.compile_filter()`` and ``Egress.hosts_file()``; ``cwd`` (default: the
    project) is where the command starts. ``exists`` says which
    candidate folders exist (for tests; by default the file system is asked).
    """

    def present(path: Path) -> bool:
        return exists.get(str(path), False) if exists is not None else path.exists()

    project = confinement.project
    argv = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    private = [Path(p) for p in PRIVATE_FOLDERS if present(Path(p))]
    private += [confinement.home, *[p for p in confinement.hidden if present(p)]]
    for folder in dict.fromkeys(private):
        # A folder holding the project is emptied too: the project is bound back into it below.
        if not _under(folder, project):
            argv += ["--tmpfs", str(folder)]
    argv += ["--dir", str(confinement.home)]
    for folder in confinement.readable:
        argv += ["--ro-bind", str(folder), str(folder)]
    argv += ["--bind", str(project), str(project)]
    git = project / ".git"
    if present(git):
        argv += ["--ro-bind", str(git), str(git)]
    if hosts_fd is not None:
        argv += ["--ro-bind-data", str(hosts_fd), "/etc/hosts"]
    argv += ["--seccomp", str(seccomp_fd), "--clearenv"]
    for name, value in confinement.env:
        argv += ["--setenv", name, value]
    argv += ["--chdir", str(cwd or project), "--", *command]
    return argv


def confined_env(env: Mapping[str, str], confinement_home: Path, egress_: Egress) -> tuple[tuple[str, str], ...]:
    """The agent's environment inside: its own variables, the rewritten URLs, a private temp folder."""
    clean = dict(env) | dict(egress_.env)
    clean["HOME"] = str(confinement_home)
    clean["TMPDIR"] = "/tmp"
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY"):
        clean.pop(proxy, None)  # a host proxy is unreachable inside; the egress endpoints are the way out
    return tuple(sorted(clean.items()))


# Runs inside the sandbox, before the agent (stdlib only; argv: control fd, ports, the agent's argv).
# It binds the egress listeners in the sandbox's own network namespace, hands them to the host
# over the inherited control socket (SCM_RIGHTS), closes that socket and becomes the agent.
HELPER_SOURCE = """\
import os, socket, sys
control, ports, argv = int(sys.argv[1]), [int(p) for p in sys.argv[2].split(",") if p], sys.argv[3:]
listeners = []
for port in ports:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    listeners.append(listener)
channel = socket.socket(fileno=control)
socket.send_fds(channel, [b"egress"], [listener.fileno() for listener in listeners])
channel.close()
for listener in listeners:
    listener.close()
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"tether sandbox: cannot start {argv[0]}: {exc.strerror}\\n")
    sys.exit(127)
"""


def helper_argv(python: str, control_fd: int, egress_: Egress, command: Iterable[str]) -> list[str]:
    """The helper's command line: ``python -I -c HELPER_SOURCE FD PORTS COMMAND...``."""
    ports = ",".join(str(e.inside_port) for e in egress_.endpoints)
    return [python, "-I", "-S", "-c", HELPER_SOURCE, str(control_fd), ports, *command]


# Folders of the system a Landlock-confined program may read and run from (those that exist).
# Of /proc only the process's own folder (``/proc/self`` is opened, so it names the agent's pid)
# and machine-wide facts: every other process's ``environ`` and ``cmdline`` stay unreadable.
SYSTEM_READABLE = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/sys", "/nix",
                   "/snap", "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg",
                   "/proc/uptime", "/proc/version", "/proc/sys", "/proc/filesystems")  # fmt: skip


@dataclass(frozen=True, slots=True)
class LandlockPlan:
    """What the Landlock helper applies before it becomes the agent (see LANDLOCK_HELPER_SOURCE)."""

    readable: tuple[str, ...]  # read and execute beneath these
    writable: tuple[str, ...]  # every file right beneath these: the project, a private home and temp folder
    devices: tuple[str, ...] = ("/dev",)  # read and write (the terminal, /dev/null), nothing else
    connect_ports: tuple[int, ...] = ()  # TCP ports it may connect to: the egress listeners

    def argument(self) -> str:
        """The helper's one argument (JSON)."""
        import json

        return json.dumps({"read": self.readable, "write": self.writable, "devices": self.devices,
                           "ports": self.connect_ports})  # fmt: skip


def landlock_plan(
    project: Path, private: Iterable[Path], program_folders: Iterable[Path], ports: Iterable[int]
) -> LandlockPlan:
    """The Landlock rules: the system and the program's own folders readable, the project and private folders writable.

    Landlock only adds rights beneath a folder, never takes them away below it, so unlike
    bubblewrap it cannot keep the project's ``.git`` read-only. Without a pid namespace,
    other processes' ``/proc`` folders exist; they are simply not readable (SYSTEM_READABLE).
    """
    readable = [*SYSTEM_READABLE, *(str(p) for p in program_folders)]
    return LandlockPlan(tuple(dict.fromkeys(readable)), (str(project), *(str(p) for p in private)),
                        connect_ports=tuple(ports))  # fmt: skip


# Runs as the agent's process before it execs the agent (stdlib and ctypes only). argv: the plan
# (JSON), the seccomp filter (hex), the agent's argv. It forbids new privileges, builds a
# Landlock ruleset for every access right the kernel knows (file rights; TCP bind and connect
# from ABI 4; abstract Unix sockets and signals scoped from ABI 6), adds the plan's rules,
# restricts itself, loads the seccomp filter, and execs the agent. Any failure exits 126.
LANDLOCK_HELPER_SOURCE = """import ctypes, json, os, struct, sys
plan, bpf, argv = json.loads(sys.argv[1]), bytes.fromhex(sys.argv[2]), sys.argv[3:]
libc = ctypes.CDLL(None, use_errno=True)
def fail(what):
    sys.stderr.write("tether sandbox (landlock): " + what + ": " + os.strerror(ctypes.get_errno()) + "\\n")
    sys.exit(126)
def call(number, *args):
    result = libc.syscall(number, *args)
    if result < 0:
        fail("syscall %d" % number)
    return result
if libc.prctl(38, 1, 0, 0, 0) != 0:
    fail("no_new_privs")
abi = libc.syscall(444, None, 0, 1)
if abi < 4:
    fail("Landlock ABI %d has no network rules (4 or later needed)" % abi)
fs = (1 << 13) - 1
fs |= (1 << 13) if abi >= 2 else 0
fs |= (1 << 14) if abi >= 3 else 0
fs |= (1 << 15) if abi >= 5 else 0
scoped = 3 if abi >= 6 else 0
attr = struct.pack("=QQQ", fs, 3, scoped) if abi >= 6 else struct.pack("=QQ", fs, 3)
ruleset = call(444, ctypes.c_char_p(attr), len(attr), 0)
file_rights = 1 | 2 | 4 | ((1 << 14) if abi >= 3 else 0) | ((1 << 15) if abi >= 5 else 0)
read = 1 | 4 | 8
def allow(path, rights):
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    if not os.path.isdir(path):
        rights &= file_rights
    rule = struct.pack("=Qi", rights, fd)
    call(445, ruleset, 1, ctypes.c_char_p(rule), 0)
    os.close(fd)
for path in plan["read"]:
    allow(path, read)
for path in plan["devices"]:
    allow(path, read | 2 | ((1 << 15) if abi >= 5 else 0))
for path in plan["write"]:
    allow(path, fs)
for port in plan["ports"]:
    rule = struct.pack("=QQ", 2, port)
    call(445, ruleset, 2, ctypes.c_char_p(rule), 0)
call(446, ruleset, 0)
os.close(ruleset)
class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
program = Program(len(bpf) // 8, bpf)
if libc.prctl(22, 2, ctypes.byref(program), 0, 0) != 0:
    fail("seccomp")
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write("tether sandbox: cannot start " + argv[0] + ": " + str(exc.strerror) + "\\n")
    sys.exit(127)
"""


def landlock_argv(python: str, plan: LandlockPlan, filter_hex: str, command: Iterable[str]) -> list[str]:
    """The helper's command line: ``python -I -S -c LANDLOCK_HELPER_SOURCE PLAN FILTER COMMAND...``."""
    return [python, "-I", "-S", "-c", LANDLOCK_HELPER_SOURCE, plan.argument(), filter_hex, *command]


def _sbpl(path: Path | str) -> str:
    escaped = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def macos_profile(project: Path, home: Path, temp: Path, hidden: Iterable[Path], ports: Iterable[int]) -> str:
    """The ``sandbox-exec -p`` profile (SBPL) for the agent on macOS (see module doc).

    Later rules win in SBPL, so the project is allowed after its home folder is denied.
    """
    lines = [
        "(version 1)",
        "(deny default)",
        "(allow process-exec process-fork)",
        "(allow signal (target same-sandbox))",
        "(allow sysctl-read)",
        "(allow mach-lookup)",
        "(allow ipc-posix-shm)",
        "(allow file-read*)",
        f"(deny file-read* (subpath {_sbpl(home)}))",
    ]
    lines += [f"(deny file-read* (subpath {_sbpl(folder)}))" for folder in hidden]
    lines += [
        f"(allow file-read* (subpath {_sbpl(project)}) (subpath {_sbpl(temp)}))",
        f"(allow file-write* (subpath {_sbpl(project)}) (subpath {_sbpl(temp)})"
        ' (literal "/dev/null") (literal "/dev/tty") (regex #"^/dev/fd/"))',
        f"(deny file-write* (subpath {_sbpl(project / '.git')}))",
        "(deny network*)",
    ]
    lines += [f'(allow network-outbound (remote ip "localhost:{port}"))' for port in ports]
    lines += ["(deny network-outbound (remote unix-socket))", "(deny network-bind)"]
    return "\n".join(lines) + "\n"


def exposed(project: Path, home: Path, hidden: Iterable[Path]) -> Path | None:
    """The folder the sandbox is meant to hide that the project itself holds (the home folder, tether's own), or None.

    The project is always writable and visible inside, so a project that is, or lies
    above, the home folder would hand the agent ``~/.ssh`` and everything else there.
    """
    for folder in (home, *hidden):
        if folder == project or folder.is_relative_to(project):
            return folder
    return None


def home_folder(env: Mapping[str, str]) -> Path:
    """The home folder the sandbox hides: ``$HOME``, else the user's."""
    return Path(env.get("HOME") or os.path.expanduser("~"))
