"""The sandbox's kernel: IPython's, less the two iopub messages per request that no Toolshed face reads, and
with cells compiled as Python normally would be although the interpreter runs under -OO.

The engine reads a cell's outputs and its final "idle" status; the Jupyter face makes its own "busy" and
"execute_input" for its clients. Leaving them out saves the kernel and the server two of a trivial cell's five
messages (signed, sent, received, checked): with 50 busy threads, the sandboxes' CPU per cell went from 4.4 to
3.4 ms and the server's from 4.6 to 3.6 ms in back-to-back runs.

Printing costs no system call per write: ipykernel's OutStream asks os.getpid() on every write (is this a forked
child?), and under gVisor every system call goes through its user-space kernel: a million prints took 127 s
there against 6 s under runc. A fork hook answers the same question from memory.

-OO (see toolshed-kernel) drops the installed libraries' docstrings from memory, but a model's own `assert`s
must still run and its own docstrings stay, so cells, `%run` scripts and modules imported from outside the image's
libraries (/usr), such as /mnt/data, are compiled at optimisation level 0.
"""

import __future__

import os
import sys
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    ExtensionFileLoader,
    FileFinder,
    SourceFileLoader,
    SourcelessFileLoader,
)

from ipykernel.compiler import XCachingCompiler
from ipykernel.iostream import OutStream
from ipykernel.ipkernel import IPythonKernel
from traitlets import Type

FUTURE_FEATURES = [getattr(__future__, name) for name in __future__.all_feature_names]


class CellCompiler(XCachingCompiler):
    def __call__(self, source, filename, symbol):  # noqa: ANN001, ANN204
        code = compile(source, filename, symbol, self.flags, True, optimize=0)
        # As codeop.Compile does: a cell's `from __future__ import` holds for the cells after it.
        for feature in FUTURE_FEATURES:
            if code.co_flags & feature.compiler_flag:
                self.flags |= feature.compiler_flag
        return code


class UserModuleLoader(SourceFileLoader):
    def source_to_code(self, data, path, *, _optimize=-1):  # noqa: ANN001, ANN201
        return super().source_to_code(data, path, _optimize=0)


_user_modules = FileFinder.path_hook((ExtensionFileLoader, EXTENSION_SUFFIXES), (UserModuleLoader, SOURCE_SUFFIXES),
                                     (SourcelessFileLoader, BYTECODE_SUFFIXES))


def _in_image(path: str) -> bool:
    return os.path.abspath(path or ".").startswith("/usr/")


def _user_module_finder(path: str) -> FileFinder:
    if _in_image(path):
        raise ImportError("the image's libraries keep the default finder (and their -OO bytecode)")
    return _user_modules(path)


_forked = False


def _mark_forked() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_mark_forked)


class ToolshedOutStream(OutStream):
    def _is_master_process(self) -> bool:
        # Streams are made in the kernel's own process; a forked child (multiprocessing) flushes as ipykernel's do.
        return not _forked


class ToolshedKernel(IPythonKernel):
    compiler_class = Type(CellCompiler)

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        sys.path_hooks.insert(0, _user_module_finder)
        # Folders already looked in (the working folder, by the imports of start-up) get the new finder too.
        for path in [p for p in sys.path_importer_cache if not _in_image(p)]:
            del sys.path_importer_cache[path]

    def _publish_execute_input(self, code, parent, execution_count):  # noqa: ANN001, ANN202
        pass

    def _publish_status(self, status, channel, parent=None):  # noqa: ANN001, ANN202
        if status != "busy":
            super()._publish_status(status, channel, parent)
