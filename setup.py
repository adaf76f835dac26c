"""Build the one extension module, ``switchboard._native.core``.

The extension is always cythonized from ``_native/core.pyx`` (generated C is
never committed). Environment switches:

- ``SFU_DEBUG=1``: bounds/wraparound checks on, line tracing, ``SFU_DEBUG`` C
  macro set to 1 (debug-only checks and counters), ``-O0 -g``.
- ``SFU_ANNOTATE=1``: write ``_native/core.html`` (Cython annotation); review it
  for yellow lines on the per-packet path.
- ``SFU_SANITIZE=1``: ``-fsanitize=address,undefined -O1 -g``; run with
  ``PYTHONMALLOC=malloc LD_PRELOAD=$(gcc -print-file-name=libasan.so)``.
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.command.build_py import build_py as _build_py

CYTHON_REQUIRED = (3, 1)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0", "false", "no")


class build_ext(_build_ext):
    def finalize_options(self) -> None:
        try:
            import Cython
            from Cython.Build import cythonize
        except ImportError as exc:  # pragma: no cover - build environment problem
            raise RuntimeError(
                "Cython >= 3.1 is required to build switchboard._native "
                "(pip installs it automatically from pyproject.toml's build requirements; "
                "for a manual build run: pip install 'Cython>=3.1,<4')"
            ) from exc
        version = tuple(int(p) for p in Cython.__version__.split(".")[:2] if p.isdigit())
        if version < CYTHON_REQUIRED:
            raise RuntimeError(
                f"Cython {Cython.__version__} is too old; switchboard needs >= 3.1 "
                "(pip install -U 'Cython>=3.1,<4')"
            )
        debug = _flag("SFU_DEBUG")
        directives = {
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
            "embedsignature": True,
        }
        macros = [("SFU_DEBUG", "1" if debug else "0")]
        if debug:
            directives["linetrace"] = True
            macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
        for ext in self.distribution.ext_modules:
            ext.define_macros = list(ext.define_macros or []) + macros
            cflags = ["-O2", "-Wall", "-Wsign-compare", "-Wno-unused-function"]
            if debug:
                cflags = ["-O0", "-g", "-Wall"]
            if _flag("SFU_SANITIZE"):
                cflags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
                ext.extra_link_args = list(ext.extra_link_args or []) + [
                    "-fsanitize=address,undefined"
                ]
            ext.extra_compile_args = list(ext.extra_compile_args or []) + cflags
        self.distribution.ext_modules[:] = cythonize(
            self.distribution.ext_modules,
            compiler_directives=directives,
            annotate=_flag("SFU_ANNOTATE"),
            include_path=["_native"],
        )
        super().finalize_options()


class build_py(_build_py):
    """The repository root is the ``switchboard`` package; its build script
    is not part of it (distutils skips it only when run as ``python setup.py``)."""

    def find_package_modules(self, package, package_dir):  # type: ignore[no-untyped-def]
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "switchboard" and m[1] == "setup")]


setup(
    ext_modules=[
        Extension(
            "switchboard._native.core",
            ["_native/core.pyx"],
            include_dirs=["_native", "_native/includes"],
            depends=["_native/includes/sb_aesgcm.h", "_native/includes/sb_srtp_index.h"],
        )
    ],
    cmdclass={"build_ext": build_ext, "build_py": build_py},
)
