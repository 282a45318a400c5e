"""Job specs: each step's options as a frozen dataclass of plain values, to JSON and back exactly.

A step's options are what a user chose, nothing live: strings (paths are strings), numbers,
booleans, None, tuples of those, dicts with string keys, and nested option dataclasses
(an :class:`~.area.Area`). That makes them the one description of a run: validated in one
place (the class's ``check``), written into the dataset card, sent to another process or a
Dask worker as JSON, and read back into an equal object.

Each field's ``metadata["help"]`` is its description for users; the Processing algorithms
build their help text from it, so a parameter is described once.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import types
import typing
from typing import Any

import numpy as np

from .errors import SatPluginError

FORMAT_KEY = "options"
# What typing.get_origin gives for Optional[X] and Union[X, Y], and for X | Y (Python 3.10+).
UNION_ORIGINS = (typing.Union, getattr(types, "UnionType", typing.Union))
# What the checks that parse geometries, CRSs or files need (see engine_checks).
ENGINE_CHECK_PACKAGES = ("shapely", "pyproj", "rasterio")


@functools.lru_cache(maxsize=1)
def engine_checks() -> bool:
    """Whether this Python can run the checks that need the engine's packages.

    The plugin's QGIS side builds the options in a QGIS whose Python may lack shapely,
    pyproj and rasterio; it checks there what plain Python can (numbers, names, paths), and
    the engine checks the rest when it reads the job, before any work: a bad area or a
    missing band file is the same sentence, one step later.
    """
    try:
        return all(importlib.util.find_spec(name) is not None for name in ENGINE_CHECK_PACKAGES)
    except (ImportError, ValueError):  # a broken install counts as missing
        return False


def option(default=dataclasses.MISSING, *, help: str, default_factory=dataclasses.MISSING):  # noqa: A002
    """A dataclass field with its user-facing description."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


class StepOptions:
    """Mixin for a step's frozen options dataclass: validation, JSON round trip, help lines."""

    def __post_init__(self):
        # Plain values whatever the caller passed: a pathlib.Path becomes its string, a list a
        # tuple where the field is a tuple, so the options equal their JSON round trip.
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            coerced = _coerced(hints[f.name], value)
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
        self.check()

    def check(self) -> None:
        """Raise :class:`SatPluginError` with one sentence for a bad value (override)."""

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps({FORMAT_KEY: type(self).__name__, **self.to_dict()}, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict):
        return _build(cls, values, cls.__name__)

    @classmethod
    def from_json(cls, text: str):
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise SatPluginError(f"The {cls.__name__} JSON is not valid JSON ({exc}).") from None
        if isinstance(values, dict) and values.get(FORMAT_KEY, cls.__name__) != cls.__name__:
            raise SatPluginError(f"That JSON holds {values[FORMAT_KEY]}, not {cls.__name__}.")
        return cls.from_dict(values)

    @classmethod
    def help_lines(cls) -> list[tuple[str, str]]:
        """(option name, description) for every described option, in declaration order."""
        return [(f.name, f.metadata["help"]) for f in dataclasses.fields(cls) if "help" in f.metadata]


def plain(value: Any):
    """``value`` as JSON values: dataclasses become dicts, tuples lists; anything else is an error."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"an option holds plain values only, not {type(value).__name__}")


def _build(cls, values, where: str):
    """A dataclass from JSON values; a missing, unknown or mistyped field is one sentence."""
    if not isinstance(values, dict):
        raise SatPluginError(f"{where} is read from a JSON object, not {type(values).__name__}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields) - {FORMAT_KEY})
    if unknown:
        raise SatPluginError(f"{where} has no option {', '.join(unknown)}.")
    missing = [name for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SatPluginError(f"{where} needs {', '.join(missing)}.")
    kwargs = {name: _typed(hints[name], value, f"{where}.{name}") for name, value in values.items() if name in fields}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SatPluginError(f"{where} has a value of the wrong kind ({exc}).") from None


def _coerced(hint, value):
    """``value`` as the plain value ``hint`` declares: a path as its string, a sequence or array as a
    tuple, a numpy number as a Python one, an int as a float where the field is a float."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = tuple(value.tolist())
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in UNION_ORIGINS:
        if value is None:
            return value
        candidates = [a for a in args if a is not type(None)]
        if any(_is_instance(c, value) for c in candidates):
            return _coerced(next(c for c in candidates if _is_instance(c, value)), value)
        for candidate in candidates:
            coerced = _coerced(candidate, value)
            if coerced is not value:
                return coerced
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple and isinstance(value, (list, tuple)):
        element = args[0] if len(args) == 2 and args[1] is Ellipsis else Any
        plain_types = _plain_types(element)
        if plain_types and all(type(v) in plain_types for v in value):
            # The common case, a hundred thousand polygons: 100 x faster than item by item.
            return value if isinstance(value, tuple) else tuple(value)
        items = tuple(_coerced(element, v) for v in value)
        return value if isinstance(value, tuple) and all(a is b for a, b in zip(items, value)) else items
    if origin is dict and isinstance(value, dict):
        element = args[1] if len(args) == 2 else Any
        items = {k: _coerced(element, v) for k, v in value.items()}
        return value if all(items[k] is value[k] for k in value) else items
    return value


def _plain_types(hint) -> frozenset:
    """The exact types whose values :func:`_coerced` leaves as they are under a scalar ``hint``
    (str, int, float, None and unions of them); empty for any other hint."""
    union = typing.get_origin(hint) in UNION_ORIGINS
    members = set(typing.get_args(hint) if union else (hint,))
    if not members <= {str, int, float, type(None)}:
        return frozenset()
    if float in members and int not in members:
        members.discard(int)  # an int becomes a float there
    return frozenset(members)


def _is_instance(hint, value) -> bool:
    """True when ``value`` already is of the declared type (no coercion needed)."""
    origin = typing.get_origin(hint) or hint
    if hint is Any:
        return True
    if hint is float:
        return isinstance(value, float)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(origin, type):
        return isinstance(value, origin)
    return False


def _typed(hint, value, where: str):
    """A JSON value back in the annotated type: tuples stay tuples, nested options are rebuilt."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in UNION_ORIGINS:
        candidates = [a for a in args if a is not type(None)]
        for candidate in candidates:
            if _fits(candidate, value):
                return _typed(candidate, value, where)
        raise SatPluginError(f"{where} is {' or '.join(_kind_of(c) for c in candidates)}, not {_json_kind(value)}.")
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _build(hint, value, where)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], v, where) for v in value)
        if args:
            return tuple(_typed(a, v, where) for a, v in zip(args, value))
        return tuple(value)
    if origin is list and isinstance(value, list):
        return [_typed(args[0], v, where) if args else v for v in value]
    if origin is dict and isinstance(value, dict):
        return {k: _typed(args[1], v, where) if args else v for k, v in value.items()}
    if hint in _KINDS:
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not _fits(hint, value):
            raise SatPluginError(f"{where} is {_KINDS[hint]}, not {_json_kind(value)}.")
    return value


# How a plain value's kind is said in a message.
_KINDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def _kind_of(hint) -> str:
    if hint in _KINDS:
        return _KINDS[hint]
    if dataclasses.is_dataclass(hint) or (typing.get_origin(hint) or hint) is dict:
        return "an object"
    return "a list"


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def _fits(hint, value) -> bool:
    origin = typing.get_origin(hint) or hint
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    if origin in (tuple, list):
        return isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(origin, type):
        return isinstance(value, origin)
    return True
