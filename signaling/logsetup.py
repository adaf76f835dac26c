"""Logging configured like rtcd's ``[logger]`` section: console and file
sinks, each with its own level and JSON or text format. Loggers are named
``sfu.<component>``."""

from __future__ import annotations

import json
import logging
import sys
import time

from .config import LoggerConfig

_LEVELS = {"panic": logging.CRITICAL, "fatal": logging.CRITICAL, "error": logging.ERROR,
           "warn": logging.WARNING, "warning": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG, "trace": logging.DEBUG}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "caller": f"{record.name}:{record.lineno}",
            "msg": record.getMessage(),
        }
        if record.exc_info:
            obj["error"] = self.formatException(record.exc_info)
        return json.dumps(obj)


def level(name: str) -> int:
    return _LEVELS.get(name.lower(), logging.INFO)


def configure_logging(cfg: LoggerConfig) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    lowest = logging.CRITICAL
    if cfg.enable_console:
        h: logging.Handler = logging.StreamHandler(sys.stderr)
        h.setLevel(level(cfg.console_level))
        h.setFormatter(JsonFormatter() if cfg.console_json else text)
        root.addHandler(h)
        lowest = min(lowest, level(cfg.console_level))
    if cfg.enable_file:
        h = logging.FileHandler(cfg.file_location)
        h.setLevel(level(cfg.file_level))
        h.setFormatter(JsonFormatter() if cfg.file_json else text)
        root.addHandler(h)
        lowest = min(lowest, level(cfg.file_level))
    root.setLevel(lowest)
    # aiohttp's access log and asyncio debug chatter stay quiet unless asked for
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
