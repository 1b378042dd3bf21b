"""`quick_init`: the same construction as the dataclass's own, at a lower cost."""

from __future__ import annotations

import dataclasses

import pytest

from scoreboard.core.commands import ActionResult, SubmitAction
from scoreboard.core.frozen import quick_init
from scoreboard.core.records import ActionRecord


@dataclasses.dataclass(frozen=True, slots=True)
class Base:
    a: int
    b: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reference(Base):
    c: float | None = None
    d: tuple[int, ...] = ()


@quick_init
@dataclasses.dataclass(frozen=True, slots=True)
class Quick(Base):
    c: float | None = None
    d: tuple[int, ...] = ()


@pytest.mark.parametrize(("args", "kwargs"), [
    ((1, "x"), {}), ((1, "x", 2.0), {}), ((1,), {"b": "y", "d": (3,)}),
    ((), {"d": (1,), "c": 0.5, "b": "z", "a": 7}),
])
def test_it_builds_what_the_generated_init_builds(args: tuple, kwargs: dict) -> None:
    quick, ref = Quick(*args, **kwargs), Reference(*args, **kwargs)
    assert dataclasses.astuple(quick) == dataclasses.astuple(ref)
    assert quick == Quick(*dataclasses.astuple(ref))
    assert hash(quick) == hash(Quick(*dataclasses.astuple(ref)))


def test_it_refuses_what_the_generated_init_refuses() -> None:
    for args, kwargs in (((), {}), ((1, "x", 2.0, (), 5), {}), ((1, "x"), {"a": 2}),
                         ((1, "x"), {"e": 1})):
        with pytest.raises(TypeError):
            Reference(*args, **kwargs)
        with pytest.raises(TypeError):
            Quick(*args, **kwargs)


def test_instances_stay_frozen() -> None:
    q = Quick(1, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.a = 2  # type: ignore[misc]
    assert dataclasses.replace(q, a=2) == Quick(2, "x")


def test_only_frozen_slotted_dataclasses_of_plain_fields() -> None:
    @dataclasses.dataclass(slots=True)
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    for cls in (Mutable, NoSlots, Factory):
        with pytest.raises(TypeError):
            quick_init(cls)


def test_the_per_action_classes_use_it() -> None:
    for cls in (ActionRecord, SubmitAction, ActionResult):
        assert cls.__init__.__code__.co_filename == "<string>"
        assert "_s0" in cls.__init__.__code__.co_names
