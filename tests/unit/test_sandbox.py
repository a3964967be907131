"""The sandbox's pure parts: the seccomp program, the bwrap command line, the egress allow-list, the macOS profile."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tether.host import sandbox, seccomp

X86 = seccomp.ABIS["x86_64"]
ARM = seccomp.ABIS["aarch64"]


def run_bpf(code: bytes, nr: int, arch: int, arg0: int = 0, arg1: int = 0) -> int:
    """A classic-BPF interpreter for the few opcodes the filter uses, run on one ``struct seccomp_data``."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, arg1, 0, 0, 0, 0)
    program = [struct.unpack("=HBBI", code[i : i + 8]) for i in range(0, len(code), 8)]
    pc, acc = 0, 0
    while True:
        op, jt, jf, k = program[pc]
        pc += 1
        if op == seccomp.LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
        elif op == seccomp.JEQ_K:
            pc += jt if acc == k else jf
        elif op == seccomp.JGE_K:
            pc += jt if acc >= k else jf
        elif op == seccomp.AND_K:
            acc &= k
        elif op == seccomp.RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


DENY = seccomp.RET_ERRNO | seccomp.EPERM


@pytest.mark.parametrize(
    ("nr", "arg0", "expected"),
    [
        (X86.socket, seccomp.AF_UNIX, DENY),  # a new Unix socket
        (X86.socket, 2, seccomp.RET_ALLOW),  # AF_INET: only loopback exists in the sandbox
        (X86.socket, 10, seccomp.RET_ALLOW),  # AF_INET6
        (X86.socket, seccomp.AF_UNIX | (1 << 32), DENY),  # the kernel reads an int: high bits do not hide it
        (53, seccomp.AF_UNIX, seccomp.RET_ALLOW),  # socketpair: two ends that reach nothing outside
        (X86.io_uring_setup, 0, DENY),  # io_uring could make sockets without socket(2)
        (0, 0, seccomp.RET_ALLOW),  # read
        (X86.socket | seccomp.X32_SYSCALL_BIT, seccomp.AF_UNIX, seccomp.RET_KILL_PROCESS),  # x32 ABI
    ],
)
def test_filter_on_x86_64(nr: int, arg0: int, expected: int) -> None:
    """The x86_64 filter denies exactly new Unix sockets and io_uring, and kills on the x32 ABI."""
    assert expected == run_bpf(seccomp.compile_filter(X86), nr, X86.audit_arch, arg0)


@pytest.mark.parametrize(
    ("domain", "kind", "expected"),
    [
        (seccomp.AF_INET, seccomp.SOCK_STREAM, seccomp.RET_ALLOW),
        (seccomp.AF_INET6, seccomp.SOCK_STREAM | 0o4000 | 0o2000000, seccomp.RET_ALLOW),  # NONBLOCK | CLOEXEC
        (seccomp.AF_INET, 2, DENY),  # UDP: Landlock's network rules cover TCP only
        (seccomp.AF_INET, 3, DENY),  # raw
        (16, 3, DENY),  # netlink
        (seccomp.AF_UNIX, seccomp.SOCK_STREAM, DENY),
    ],
)
def test_tcp_only_filter(domain: int, kind: int, expected: int) -> None:
    """The Landlock sandbox's filter: only TCP sockets of IPv4 or IPv6."""
    code = seccomp.compile_filter(X86, tcp_only=True)
    assert expected == run_bpf(code, X86.socket, X86.audit_arch, domain, kind)
    assert seccomp.RET_ALLOW == run_bpf(code, 0, X86.audit_arch)


def test_filter_kills_a_foreign_architecture() -> None:
    """A syscall of another architecture (a 32-bit binary's socketcall) kills the process."""
    assert seccomp.RET_KILL_PROCESS == run_bpf(seccomp.compile_filter(X86), 102, 0x40000003)


def test_filter_on_aarch64() -> None:
    """The aarch64 filter uses that architecture's numbers."""
    code = seccomp.compile_filter(ARM)
    assert DENY == run_bpf(code, ARM.socket, ARM.audit_arch, seccomp.AF_UNIX)
    assert seccomp.RET_ALLOW == run_bpf(code, ARM.socket, ARM.audit_arch, 2)
    assert seccomp.RET_ALLOW == run_bpf(code, X86.socket, ARM.audit_arch, seccomp.AF_UNIX)  # 41 is not socket there


def test_unknown_architecture() -> None:
    """An architecture with no known numbers is an error, never an empty filter."""
    with pytest.raises(seccomp.UnsupportedArchitecture, match="riscv64"):
        seccomp.abi("riscv64")
    assert X86 == seccomp.abi("AMD64")


def test_egress_keeps_names_and_moves_ports() -> None:
    """Each base URL becomes one endpoint; a name stays (TLS checks it), an address becomes loopback."""
    egress = sandbox.egress({
        "ANTHROPIC_BASE_URL": "https://llm.example.com",
        "OPENAI_BASE_URL": "http://10.0.0.5:8000/v1",
        "OPENAI_API_KEY": "sk-x",
        "PATH": "/usr/bin",
    })  # fmt: skip
    assert (
        sandbox.Endpoint("llm.example.com", 443, sandbox.FIRST_SPARE_PORT),
        sandbox.Endpoint("10.0.0.5", 8000, 8000),
    ) == egress.endpoints
    assert (
        ("ANTHROPIC_BASE_URL", f"https://llm.example.com:{sandbox.FIRST_SPARE_PORT}"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
    ) == egress.env
    assert "127.0.0.1 llm.example.com" in egress.hosts_file().splitlines()


def test_egress_for_a_key_alone_is_the_public_api() -> None:
    """With only an API key set, the provider's public API is the one way out."""
    egress = sandbox.egress({"ANTHROPIC_API_KEY": "k"})
    assert (sandbox.Endpoint("api.anthropic.com", 443, sandbox.FIRST_SPARE_PORT),) == egress.endpoints
    assert (("ANTHROPIC_BASE_URL", f"https://api.anthropic.com:{sandbox.FIRST_SPARE_PORT}"),) == egress.env


def test_no_provider_no_way_out() -> None:
    """No base URL and no key: no endpoint at all; a URL that is not http(s) is ignored."""
    assert () == sandbox.egress({"PATH": "/bin", "FOO_BASE_URL": "file:///etc/passwd"}).endpoints


def confinement(project: Path, **changes: object) -> sandbox.Confinement:
    base = sandbox.Confinement(project=project, home=Path("/home/dev"), env=(("PATH", "/usr/bin"),),
                               hidden=(Path("/home/dev/.local/state/tether"),))  # fmt: skip
    return sandbox.Confinement(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})  # type: ignore[arg-type]


def pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_bwrap_argv_order_and_flags() -> None:
    """Every namespace unshared, / read-only, private folders, the project writable after them, .git read-only."""
    project = Path("/home/dev/code/app")
    exists = {"/tmp": True, "/home": True, "/root": True, "/home/dev/code/app/.git": True,
              "/home/dev/.local/state/tether": True}  # fmt: skip
    argv = sandbox.bwrap_argv(confinement(project), ["agent", "--acp"], seccomp_fd=7, hosts_fd=8, exists=exists)
    assert argv[:7] == ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
                        "--cap-drop", "ALL"]  # fmt: skip
    assert ["/", "/"] == argv[argv.index("--ro-bind") + 1 : argv.index("--ro-bind") + 3]
    assert ["/tmp", "/home", "/root", "/home/dev", "/home/dev/.local/state/tether"] == pairs(argv, "--tmpfs")
    assert argv.index("--bind") > max(i for i, a in enumerate(argv) if a == "--tmpfs")
    assert str(project) == pairs(argv, "--bind")[0]
    git = argv.index(str(project / ".git"))
    assert "--ro-bind" == argv[git - 1] and git > argv.index("--bind")
    assert ["7"] == pairs(argv, "--seccomp")
    assert ["8"] == pairs(argv, "--ro-bind-data")
    assert "--clearenv" in argv and ["PATH"] == pairs(argv, "--setenv")
    assert ["--", "agent", "--acp"] == argv[-3:]
    assert "--share-net" not in argv


def test_bwrap_argv_never_hides_the_project() -> None:
    """A private folder inside the project is not mounted over it; no .git, no read-only bind of it."""
    project = Path("/srv/app")
    argv = sandbox.bwrap_argv(confinement(project, hidden=(Path("/srv/app/state"),)), ["a"], 3,
                              exists={"/srv/app/state": True})  # fmt: skip
    assert "/srv/app/state" not in pairs(argv, "--tmpfs")
    assert str(project / ".git") not in argv
    assert [] == pairs(argv, "--ro-bind-data")


def test_confined_env_drops_host_proxies() -> None:
    """Inside: the rewritten URLs, a private TMPDIR, no host proxy variables."""
    egress = sandbox.egress({"ANTHROPIC_BASE_URL": "http://127.0.0.1:9999"})
    env = dict(sandbox.confined_env({"HTTPS_PROXY": "http://corp:3128", "ANTHROPIC_BASE_URL": "x", "LANG": "C"},
                                    Path("/home/dev"), egress))  # fmt: skip
    assert {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9999", "HOME": "/home/dev", "TMPDIR": "/tmp", "LANG": "C"} == env


def test_macos_profile_text() -> None:
    """Deny by default; the project writable but not .git; home and tether's folders unreadable; only proxy ports."""
    profile = sandbox.macos_profile(Path('/Users/d/my "app"'), Path("/Users/d"), Path("/private/tmp/t"),
                                    [Path("/Users/d/Library/Application Support/tether")], [20000])  # fmt: skip
    lines = profile.splitlines()
    assert ["(version 1)", "(deny default)"] == lines[:2]
    assert '(deny file-read* (subpath "/Users/d"))' in lines
    assert '(deny file-read* (subpath "/Users/d/Library/Application Support/tether"))' in lines
    project = '"/Users/d/my \\"app\\""'
    write = next(line for line in lines if line.startswith("(allow file-write*"))
    assert f"(subpath {project})" in write and '(subpath "/private/tmp/t")' in write
    assert '(deny file-write* (subpath "/Users/d/my \\"app\\"/.git"))' in lines
    # Later rules win: the project's read allow comes after the home's deny; .git's deny after the write allow.
    assert lines.index('(deny file-read* (subpath "/Users/d"))') < lines.index(next(
        line for line in lines if line.startswith("(allow file-read*") and project in line))  # fmt: skip
    assert lines.index("(deny network*)") < lines.index('(allow network-outbound (remote ip "localhost:20000"))')
    assert "(deny network-outbound (remote unix-socket))" in lines
    assert not any("network-inbound" in line or "(allow network*" in line for line in lines)


def test_landlock_plan() -> None:
    """Landlock: the system and the program's folders readable, the project and private folders writable,
    only the egress ports reachable; of /proc only the process's own folder and machine-wide facts."""
    plan = sandbox.landlock_plan(Path("/srv/app"), [Path("/tmp/tether-sandbox-x")], [Path("/opt/venv")], [41000])
    assert ("/srv/app", "/tmp/tether-sandbox-x") == plan.writable
    assert "/usr" in plan.readable and "/opt/venv" in plan.readable and "/proc/self" in plan.readable
    assert "/proc" not in plan.readable and "/home" not in plan.readable and "/tmp" not in plan.readable
    assert (41000,) == plan.connect_ports
    argv = sandbox.landlock_argv("/usr/bin/python3", plan, "00ff", ["agent", "--acp"])
    assert ["/usr/bin/python3", "-I", "-S", "-c"] == argv[:4]
    assert ["00ff", "agent", "--acp"] == argv[-3:]
    compile(sandbox.LANDLOCK_HELPER_SOURCE, "landlock-helper", "exec")  # the helper is valid Python
    compile(sandbox.HELPER_SOURCE, "egress-helper", "exec")


def test_a_project_holding_the_home_folder_is_refused() -> None:
    """The home folder itself, or a folder above it, cannot be the sandbox's project: ~/.ssh would be inside."""
    home, state = Path("/home/dev"), Path("/srv/state/tether")
    assert home == sandbox.exposed(Path("/home/dev"), home, [state])
    assert home == sandbox.exposed(Path("/home"), home, [state])
    assert home == sandbox.exposed(Path("/"), home, [state])
    assert state == sandbox.exposed(Path("/srv"), home, [state])
    assert None is sandbox.exposed(Path("/home/dev/code/app"), home, [state])
