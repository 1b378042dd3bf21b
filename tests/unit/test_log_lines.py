"""`Line`: a per-request record that formats as `extra=` would, without the stack walk."""

from __future__ import annotations

import io
import logging

import orjson

from scoreboard.runtime.logs import JsonFormatter, write

FIELDS = {"request_id": "r-1", "method": "GET", "path": "/x", "status": 200, "ms": 0.5}


def lines(formatter: logging.Formatter, emit: object) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.lines")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        emit(logger)  # type: ignore[operator]
    finally:
        logger.removeHandler(handler)
    return stream.getvalue().splitlines()


def test_a_line_is_the_json_of_a_record_with_extra() -> None:
    def both(logger: logging.Logger) -> None:
        logger.info("request", extra=FIELDS)
        write(logger, logging.INFO, "request", dict(FIELDS))

    standard, line = (orjson.loads(text) for text in lines(JsonFormatter(), both))
    assert abs(standard.pop("ts") - line.pop("ts")) < 1
    assert line == standard == {"level": "info", "logger": "test.lines", "msg": "request",
                                **FIELDS}


def test_a_line_formats_with_percent_styles_that_name_any_record_attribute() -> None:
    fmt = ("%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d %(funcName)s "
           "%(process)s %(thread)s %(relativeCreated)d %(message)s %(path)s")
    [text] = lines(logging.Formatter(fmt),
                   lambda logger: write(logger, logging.WARNING, "request", dict(FIELDS)))
    assert " WARNING test.lines " in text and text.endswith(" request /x")


def test_filters_and_levels_apply_as_to_any_record() -> None:
    def quiet(logger: logging.Logger) -> None:
        logger.setLevel(logging.INFO)
        keep = logging.Filter("elsewhere")
        logger.addFilter(keep)
        try:
            write(logger, logging.INFO, "request", dict(FIELDS))
        finally:
            logger.removeFilter(keep)

    assert lines(JsonFormatter(), quiet) == []
