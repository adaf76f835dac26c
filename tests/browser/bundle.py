"""Build the RTCPeer bundle the test page loads, at test time.

``@mattermost/calls-common`` ships AGPL-licensed ES-module sources (``lib/``) that import the
Node ``events`` module; esbuild turns them (with the npm ``events`` polyfill) into one browser
IIFE that exposes ``window.CallsCommon.{RTCPeer, RTCMonitor, parseRTCStats, ...}``. The
bundle is written to a temporary directory and never committed (reference/browsers.md 6).
The npm packages come from ``tests/js`` (``scripts/bootstrap test`` runs ``npm ci`` there).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

JS_DIR = Path(__file__).resolve().parent.parent / "js"
"""``tests/js``: package.json and package-lock.json of the test-time npm dependencies."""

ENTRY = "export * from '@mattermost/calls-common';\n"


class BundleError(RuntimeError):
    """The npm dependencies are missing or esbuild failed."""


def build_bundle(out_dir: Path, js_dir: Path = JS_DIR) -> Path:
    """Bundle calls-common into ``out_dir/calls-common.js`` and return its path."""
    esbuild = js_dir / "node_modules" / ".bin" / "esbuild"
    package = js_dir / "node_modules" / "@mattermost" / "calls-common" / "package.json"
    if not esbuild.exists() or not package.exists():
        raise BundleError(
            f"npm test dependencies are not installed in {js_dir}; "
            "run `scripts/bootstrap test` (or `npm ci --ignore-scripts` there)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "calls-common.js"
    # The entry comes from stdin so that esbuild resolves packages from tests/js (its cwd).
    proc = subprocess.run(
        [str(esbuild), "--bundle", "--format=iife", "--global-name=CallsCommon",
         "--platform=browser", "--target=es2020", "--log-level=warning", f"--outfile={out}"],
        input=ENTRY, text=True, capture_output=True, cwd=js_dir, timeout=60, check=False,
    )
    if proc.returncode != 0 or not out.exists():
        raise BundleError(f"esbuild failed ({proc.returncode}): {proc.stderr.strip()}")
    return out
