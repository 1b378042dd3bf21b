"""PostgreSQL `float8[]` literals: every double, None, NaN and the infinities read back
exactly as they were (`scoreboard.storage.postgres.log._doubles`)."""

from __future__ import annotations

import math
import random
import struct

import pytest

from scoreboard.storage.postgres.log import _doubles


def read(literal: str) -> list[float | None]:
    """The literal as PostgreSQL reads it: NULL, or a number's text as a double."""
    inner = literal[1:-1]
    return [None if x.upper() == "NULL" else float(x) for x in inner.split(",")] if inner else []


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a):
        return math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@pytest.mark.parametrize("values", [
    (), (None,), (None, None), (1.5, None), (float("nan"),), (None, float("nan")),
    (float("inf"), None), (float("-inf"), 1.0), (True, 2.0), (2**70, 1.0), (2**60 + 1,),
    (-0.0,), (1e300, 1e-300, 5e-324), (1_750_000_000.123456789,), (0.1 + 0.2,), (1e16,),
])
def test_each_double_reads_back_as_it_was(values: tuple[float | None, ...]) -> None:
    assert all(same(g, None if v is None else float(v))
               for g, v in zip(read(_doubles(values)), values, strict=True))


def test_random_doubles_read_back_exactly() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        values = tuple(struct.unpack("d", rng.randbytes(8))[0] for _ in range(3))
        assert all(same(g, v) for g, v in zip(read(_doubles(values)), values, strict=True))


def test_null_is_written_as_null() -> None:
    assert _doubles((1.5, None)) == "{1.5,NULL}"
    assert _doubles((float("nan"), None)) == "{nan,NULL}"
