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
    sinks: list[tuple[logging.Handler, str, bool]] = []
    if cfg.enable_console:
        sinks.append((logging.StreamHandler(sys.stderr), cfg.console_level, cfg.console_json))
    if cfg.enable_file:
        sinks.append((logging.FileHandler(cfg.file_location), cfg.file_level, cfg.file_json))
    for handler, name, as_json in sinks:
        handler.setLevel(level(name))
        handler.setFormatter(JsonFormatter() if as_json else text)
        root.addHandler(handler)
        lowest = min(lowest, level(name))
    root.setLevel(lowest)
    # aiohttp's access log and asyncio debug chatter stay quiet unless asked for
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
