from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from switchboard.engine.mediaplane import MediaConfig, MediaPlane  # noqa: E402


@pytest.fixture
async def plane() -> AsyncIterator[MediaPlane]:
    p = MediaPlane(MediaConfig(addresses=("127.0.0.1",), port=0, report_interval=3600))
    await p.start()
    try:
        yield p
    finally:
        await p.stop()
