"""How a parse worker confines itself before it reads a file: a network namespace of its own (nothing but a
loopback that is down), no root (setgid/setuid to an unprivileged user, no supplementary groups, no new
privileges), and limits on its address space, its core dumps and, file by file, its CPU time.

A worker that cannot get a network namespace (a container without CAP_SYS_ADMIN, a host that forbids user
namespaces) still parses, unprivileged and limited, and says so once on stderr.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pkgutil
import pwd
import resource
import sys

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_NO_NEW_PRIVS = 38
_PRELOADED = ("encodings", "pypdf", "docx", "pptx", "bs4")
_libc = ctypes.CDLL(None, use_errno=True)


def confine(memory_bytes: int, user: str) -> None:
    """Confine this process for good: offline, unprivileged, at most `memory_bytes` of address space."""
    _preload()
    offline = _unshare_network()
    if os.geteuid() == 0:
        _become(user)
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if not offline:
        print("toolshed parse worker: no network namespace could be made "
              f"({os.strerror(ctypes.get_errno())}); parsing with the host's network", file=sys.stderr)


def limit_cpu(seconds: float) -> None:
    """Let the next file use at most `seconds` of CPU (SIGXCPU ends the worker past it). The limit counts the
    process's whole life, so each file's is set from what earlier files used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))


def _preload() -> None:
    """Import the parsers, every module of theirs and every codec while all files are still readable: the
    unprivileged user may not be able to read the Python install (a pyenv under /root), and a module a parser
    imports lazily would then be missing."""
    import retrieval.parsing  # noqa: F401

    for name in _PRELOADED:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            if "doctest" in module.name or "html5" in module.name:  # test helpers and an absent builder
                continue
            try:
                importlib.import_module(module.name)
            except (ImportError, LookupError):  # an optional dependency not installed, a Windows-only codec
                pass


def _unshare_network() -> bool:
    """A new, empty network namespace; without root, inside a new user namespace (which allows it)."""
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    return _libc.unshare(flags) == 0


def _become(user: str) -> None:
    """Root gives up its groups and its ids, for good."""
    if user.isdigit():
        try:
            entry = pwd.getpwuid(int(user))
            uid, gid = entry.pw_uid, entry.pw_gid
        except KeyError:  # a uid with no name on this host: its own group id too
            uid = gid = int(user)
    else:
        entry = pwd.getpwnam(user)
        uid, gid = entry.pw_uid, entry.pw_gid
    if uid == 0:
        raise SystemExit("toolshed parse worker: refusing to parse as root")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
