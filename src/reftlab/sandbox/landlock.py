"""Landlock (Linux >= 5.13) through ctypes: confine a process to one directory (stdlib only).

Landlock is an unprivileged kernel mechanism: once a process restricts itself, it and its
future children can no longer read, write, create or delete files outside the allowed
directory, whatever their uid, and the restriction cannot be lifted. Newer kernels add TCP
bind/connect control (ABI 4, Linux 6.7) and signal/abstract-socket scoping (ABI 6, Linux 6.12:
no signals to processes outside the sandbox). Each right is used only where the running kernel
supports it; ``abi_version()`` says which.

Syscall numbers 444-446 are those of the generic table (x86-64, arm64 and most others).
"""

from __future__ import annotations

import ctypes
import os
import struct

_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights: bits 0-12 exist since ABI 1 (execute, write, read, readdir, remove dir and
# file, make char/dir/reg/sock/fifo/block/sym); later ABIs add refer, truncate and ioctl_dev.
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BIND_AND_CONNECT_TCP = 0b11  # ABI 4
_SCOPE_ABSTRACT_UNIX_AND_SIGNAL = 0b11  # ABI 6

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args: object) -> int:
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock syscall {number}: {os.strerror(errno)}")
    return result


def abi_version() -> int:
    """The Landlock ABI version of the running kernel; 0 when Landlock is absent or disabled."""
    try:
        return _syscall(
            _SYS_CREATE_RULESET,
            ctypes.c_void_p(None),
            ctypes.c_size_t(0),
            ctypes.c_uint32(_CREATE_RULESET_VERSION),
        )
    except OSError:
        return 0


def _fs_rights(abi: int) -> int:
    return _FS_RIGHTS_BY_ABI[max(level for level in _FS_RIGHTS_BY_ABI if level <= abi)]


def restrict_to_directory(directory: str, abi: int) -> None:
    """Confine the calling process (and its future children) to ``directory``.

    Outside ``directory`` nothing can be read, listed, written, created, removed or executed;
    with ABI >= 4 no TCP connect or bind anywhere; with ABI >= 6 no signal to a process outside
    the sandbox. Files already open stay usable. Raises OSError if the kernel refuses.
    """
    fs_rights = _fs_rights(abi)
    net_rights = _NET_BIND_AND_CONNECT_TCP if abi >= 4 else 0
    scoped = _SCOPE_ABSTRACT_UNIX_AND_SIGNAL if abi >= 6 else 0
    # The kernel reads only the prefix of the attribute struct that this ABI knows about.
    attr_size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = ctypes.create_string_buffer(struct.pack("=QQQ", fs_rights, net_rights, scoped))
    ruleset_fd = _syscall(_SYS_CREATE_RULESET, attr, ctypes.c_size_t(attr_size), ctypes.c_uint32(0))
    dir_fd = os.open(directory, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = ctypes.create_string_buffer(struct.pack("=Qi", fs_rights, dir_fd))
        _syscall(
            _SYS_ADD_RULE,
            ctypes.c_int(ruleset_fd),
            ctypes.c_int(_RULE_PATH_BENEATH),
            rule,
            ctypes.c_uint32(0),
        )
        # Restricting oneself without CAP_SYS_ADMIN requires no_new_privs; set it either way.
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        _syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))
    finally:
        os.close(dir_fd)
        os.close(ruleset_fd)
