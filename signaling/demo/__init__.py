"""``switchboard demo``: the SFU plus a small built-in chat host and web page.

The demo plays the part a chat server plays for rtcd (the seeds describe Mattermost's Calls
plugin): users, channels (public, private, direct messages, archived), who may join a call,
and relaying signaling between the browsers and the SFU, which runs embedded
(``signaling.embed.EmbeddedSFU``) in the same process. The page's WebRTC client
(``static/rtc.js``) is ours and speaks the calls-dc protocol of Mattermost's RTCPeer.

- ``host``: the rules (membership, guests, deactivated users, archived channels, call links,
  call size, one screen sharer, participants' state), without I/O;
- ``server``: aiohttp (the page and one WebSocket per page) and the relay to the SFU;
- ``tls``: the self-signed certificate for ``--tls`` (HTTPS across a LAN);
- ``static/``: ``index.html``, ``app.js`` (the page), ``rtc.js`` (the WebRTC client),
  ``style.css``.

- ``command``: the ``switchboard demo`` options, and ``run(config)``, which starts everything,
  prints where to point a browser and runs until SIGINT or SIGTERM.

Imports are lazy so that ``switchboard doctor`` does not load the media stack.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DemoConfig", "DemoError", "DemoHost", "DemoServer"]


def __getattr__(name: str) -> Any:
    if name in ("DemoConfig", "DemoServer"):
        from . import server
        return getattr(server, name)
    if name in ("DemoError", "DemoHost"):
        from . import host
        return getattr(host, name)
    raise AttributeError(name)
