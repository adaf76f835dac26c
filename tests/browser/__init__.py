"""Real-browser interop harness: Debian Chromium driven by Playwright runs Mattermost's
unmodified ``RTCPeer`` (npm ``@mattermost/calls-common``, bundled at test time) against
``RtcServer``, everything inside a private network namespace with only loopback.

Layout: ``bundle`` (esbuild the RTCPeer bundle), ``relay`` (aiohttp: the test page and a
WebSocket per page bridged to ``RtcServer``, standing in for the Mattermost plugin), ``page/``
(our small page script around ``RTCPeer``), ``chromium`` (launch flags), ``driver`` (Python
handles on pages), ``png`` (blank-screenshot check), ``scenarios`` and ``run`` (the netns entry
point that prints one JSON result line). See reference/browsers.md for why each flag is there.
"""

RESULT_PREFIX = "RESULT "
"""Marks the JSON result line ``browser.run`` prints last (kept here: importing it needs no server)."""
