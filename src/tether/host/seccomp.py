"""The sandbox's seccomp filter, as a classic BPF program built here (pure: bytes out).

Rule (DESIGN.md rule 6, threat model "the sandbox"): a confined agent may not open a new
Unix socket. A read-only bind of ``/`` does not stop ``connect()`` to a host Unix socket
(a Docker or SSH agent socket, a D-Bus bus, tether's own relay socket) because a path
socket is reached through the file system, not the network namespace; so ``socket(2)``
with domain ``AF_UNIX`` fails with EPERM. ``socketpair(2)`` stays allowed: it makes two
connected ends and reaches nothing outside (Node and Python use it for child pipes).
``io_uring_setup(2)`` fails too, because io_uring can create sockets without ``socket(2)``.
A syscall of another ABI than the native one (x32 on x86_64, a 32-bit binary's
``socketcall``) kills the process: the filter cannot speak for numbers it does not know.

Layout of the data the kernel filters (``struct seccomp_data``, linux/seccomp.h):
``int nr`` at 0, ``u32 arch`` at 4, ``u64 ip`` at 8, ``u64 args[6]`` from 16. bubblewrap
loads the program from a file descriptor (``bwrap --seccomp FD``) as raw ``struct
sock_filter`` entries: ``u16 code, u8 jt, u8 jf, u32 k`` in native byte order.
"""

from __future__ import annotations

import platform
import struct
from dataclasses import dataclass

# linux/filter.h (classic BPF opcodes)
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: A = data[k:k+4]
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K: pc += (A == k) ? jt : jf
JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K
AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K: A &= k

# linux/seccomp.h
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
EPERM = 1
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_TYPE_MASK = 0xF  # the type without SOCK_NONBLOCK / SOCK_CLOEXEC
X32_SYSCALL_BIT = 0x40000000

OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG0 = 16  # low 32 bits of args[0] on a little-endian machine (the domain is an int)
OFFSET_ARG1 = 24  # low 32 bits of args[1] (the type)


@dataclass(frozen=True, slots=True)
class Abi:
    """What the filter needs to know about one architecture."""

    audit_arch: int  # AUDIT_ARCH_* (linux/audit.h)
    socket: int  # __NR_socket
    io_uring_setup: int  # __NR_io_uring_setup
    x32: bool = False  # numbers with X32_SYSCALL_BIT set belong to another ABI


ABIS = {
    "x86_64": Abi(0xC000003E, socket=41, io_uring_setup=425, x32=True),
    "aarch64": Abi(0xC00000B7, socket=198, io_uring_setup=425),
}


class UnsupportedArchitecture(Exception):
    """No filter is known for this machine's architecture."""


def abi(machine: str | None = None) -> Abi:
    """The Abi of ``machine`` (``platform.machine()`` by default)."""
    machine = machine or platform.machine()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine.lower())
    if machine not in ABIS:
        raise UnsupportedArchitecture(f"no seccomp filter for the {machine} architecture")
    return ABIS[machine]


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def program(target: Abi, tcp_only: bool = False) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; jumps are relative to the next one.

    ``tcp_only`` (the Landlock sandbox, which has no network namespace and whose network
    rules cover TCP only): ``socket(2)`` succeeds only for a TCP socket of AF_INET or
    AF_INET6, so no UDP, raw, netlink or Unix socket can be made.
    """
    deny = RET_ERRNO | EPERM
    ops = [
        _op(LD_W_ABS, OFFSET_ARCH),
        _op(JEQ_K, target.audit_arch, jt=1, jf=0),
        _op(RET_K, RET_KILL_PROCESS),
        _op(LD_W_ABS, OFFSET_NR),
    ]
    if target.x32:
        ops += [_op(JGE_K, X32_SYSCALL_BIT, jt=0, jf=1), _op(RET_K, RET_KILL_PROCESS)]
    ops += [_op(JEQ_K, target.io_uring_setup, jt=0, jf=1), _op(RET_K, deny)]
    if tcp_only:
        ops += [
            _op(JEQ_K, target.socket, jt=0, jf=7),
            _op(LD_W_ABS, OFFSET_ARG0),
            _op(JEQ_K, AF_INET, jt=1, jf=0),
            _op(JEQ_K, AF_INET6, jt=0, jf=3),
            _op(LD_W_ABS, OFFSET_ARG1),
            _op(AND_K, SOCK_TYPE_MASK),
            _op(JEQ_K, SOCK_STREAM, jt=1, jf=0),
            _op(RET_K, deny),
            _op(RET_K, RET_ALLOW),
        ]
        return ops
    ops += [
        _op(JEQ_K, target.socket, jt=0, jf=3),
        _op(LD_W_ABS, OFFSET_ARG0),
        _op(JEQ_K, AF_UNIX, jt=0, jf=1),
        _op(RET_K, deny),
        _op(RET_K, RET_ALLOW),
    ]
    return ops


def compile_filter(target: Abi | None = None, tcp_only: bool = False) -> bytes:
    """The filter as the bytes ``bwrap --seccomp FD`` reads (``struct sock_filter`` array)."""
    return b"".join(struct.pack("=HBBI", *op) for op in program(target or abi(), tcp_only))
