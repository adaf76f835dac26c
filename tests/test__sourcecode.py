"""Lint and type checks as tests (ruff over the Python layers, mypy --strict
over engine/ and signaling/ with the native module's .pyi stub), so CI runs
them with everything else."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "engine", "signaling", "_native/core.pyi"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    # The repository root is the `switchboard` package; give mypy a path where
    # it is importable under that name.
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(ROOT, Path(tmp) / "switchboard")
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
             "-p", "switchboard.engine", "-p", "switchboard.signaling"],
            cwd=tmp, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
