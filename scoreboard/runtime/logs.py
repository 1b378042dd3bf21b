"""Structured logs: one JSON object per line on stderr.

`Line` is a record for lines written once per request (the access log): the logging
module's own records look up the caller's file, line and function (a walk up the stack),
the thread and the process for each line, which the JSON line never shows, and cost
more than the rest of a cached read. A `Line` goes to the logger's handlers like any
record (levels, filters, handlers and propagation as configured), its fields as
attributes, as `extra=` would give them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}


class Line(logging.LogRecord):
    """A record of `msg` with `fields`, made with only what a line shows: the
    caller's place, thread and process are left blank (present, as `%`-style formats
    read them from the record's dict)."""

    def __init__(self, logger: logging.Logger, level: int, msg: str,
                 fields: dict[str, Any]) -> None:  # no super(): the point is to skip it
        attrs = self.__dict__
        attrs.update(_BLANK)
        attrs.update(fields)
        self.name = logger.name
        self.msg = msg
        self.levelno = level
        self.levelname = logging.getLevelName(level)
        self.created = created = time.time()
        self.msecs = int(created * 1000) % 1000


_BLANK: dict[str, Any] = {key: value for key, value in {
    "args": (), "pathname": "", "filename": "", "module": "", "funcName": "", "lineno": 0,
    "exc_info": None, "exc_text": None, "stack_info": None, "relativeCreated": 0.0,
    "thread": None, "threadName": None, "processName": None, "process": None,
    "taskName": None,  # a record attribute from Python 3.12
}.items() if key in _STANDARD}


def write(logger: logging.Logger, level: int, msg: str, fields: dict[str, Any]) -> None:
    """Log `msg` with `fields` as a `Line` (the caller checks the level first)."""
    logger.handle(Line(logger, level, msg, fields))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.Formatter.converter = time.gmtime
