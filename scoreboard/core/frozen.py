"""Frozen dataclasses built at nearly the speed of plain ones.

`@dataclass(frozen=True, slots=True)` generates an `__init__` that stores each field
with `object.__setattr__(self, name, value)`: the attribute `__setattr__` is looked up on
`object`, then the field's slot on the class, once per field. A record, a command and a
reply are built for every action, so that was a tenth of the writer's work under trusted
batches. `quick_init` gives such a class an `__init__` that calls each slot's own
descriptor instead (looked up once, when the class is made): the same fields, defaults
and order, and the instances stay frozen (assigning a field still raises).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Replace a frozen slotted dataclass's `__init__` (positional or keyword, defaults
    as declared); applied above `@dataclass`."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__")
    namespace: dict[str, Any] = {}
    signature, body = [], []
    for i, f in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain fields are supported")
        if f.default is dataclasses.MISSING:
            signature.append(f.name)
        else:
            namespace[f"_d{i}"] = f.default
            signature.append(f"{f.name}=_d{i}")
        namespace[f"_s{i}"] = getattr(cls, f.name).__set__  # the slot's descriptor
        body.append(f"    _s{i}(self, {f.name})")
    source = f"def __init__(self, {', '.join(signature)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)  # text made above from the field names only
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    setattr(cls, "__init__", init)  # noqa: B010 (a method replaced on the class)
    return cls
