"""Generic conversion of plain data (from YAML) into typed frozen dataclasses.

``convert`` never stops at the first problem: each one is appended to ``errors`` as
``"path: what was wrong (valid choices)"`` and conversion carries on, so a user sees every
mistake of a config at once.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

from vidrl.errors import choices_hint

MISSING = object()

#: Called for fields whose metadata names a component kind: (kind, field type, value, path) → object.
ComponentHook = Callable[[str, Any, Any, str], Any]


class _Invalid(Exception):
    """Internal: this value could not be converted (the reason is already in ``errors``)."""


def _describe(value: Any) -> str:
    return (
        f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__
    )


def convert(tp: Any, value: Any, path: str, errors: list[str], component: ComponentHook | None = None) -> Any:
    """Convert ``value`` to type ``tp``; on failure record the error and return ``MISSING``."""
    try:
        return _convert(tp, value, path, errors, component)
    except _Invalid:
        return MISSING


def is_missing(value: Any) -> bool:
    return value is MISSING


def _fail(errors: list[str], path: str, msg: str) -> typing.NoReturn:
    errors.append(f"{path or '<top>'}: {msg}")
    raise _Invalid


def _convert(tp: Any, value: Any, path: str, errors: list[str], component: ComponentHook | None) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _convert(rest[0], value, path, errors, component)
        _fail(errors, path, f"unions other than Optional are not supported ({tp})")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            _fail(
                errors,
                path,
                f"invalid value {value!r}; {choices_hint(str(value), map(str, choices))}",
            )
        return value
    if origin in (tuple, list) or tp in (tuple, list):
        return _convert_sequence(tp, value, path, errors, component)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            _fail(errors, path, f"expected a mapping, got {_describe(value)}")
        args = typing.get_args(tp)
        item_tp = args[1] if args else Any
        return {k: _convert(item_tp, v, f"{path}.{k}", errors, component) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, path, errors, component)
    return _convert_scalar(tp, value, path, errors)


def _convert_sequence(
    tp: Any, value: Any, path: str, errors: list[str], component: ComponentHook | None
) -> Any:
    if not isinstance(value, (list, tuple)):
        _fail(errors, path, f"expected a list, got {_describe(value)}")
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    item_tp = args[0] if args else Any
    items, bad = [], False
    for i, v in enumerate(value):
        try:
            items.append(_convert(item_tp, v, f"{path}[{i}]", errors, component))
        except _Invalid:
            bad = True
    if bad:
        raise _Invalid
    return tuple(items) if (typing.get_origin(tp) or tp) is tuple else items


def _convert_scalar(tp: Any, value: Any, path: str, errors: list[str]) -> Any:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(tp, type):
        ok = isinstance(value, tp)
    else:
        _fail(errors, path, f"unsupported annotation {tp!r}")
    if not ok:
        _fail(errors, path, f"expected {getattr(tp, '__name__', tp)}, got {_describe(value)}")
    return value


def build_dataclass(
    cls: type, value: Any, path: str, errors: list[str], component: ComponentHook | None = None
) -> Any:
    """Build dataclass ``cls`` from a mapping: unknown keys, missing fields, wrong types, and
    errors raised by ``__post_init__`` (ValueError/TypeError) are all recorded."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        _fail(errors, path, f"expected a mapping for {cls.__name__}, got {_describe(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [str(k) for k in value if k not in fields]
    errors += [f"{_join(path, k)}: unknown key; {choices_hint(k, fields)}" for k in unknown]
    kwargs, invalid = _convert_fields(cls, fields, value, path, errors, component)
    try:
        # with invalid fields left at their defaults, so that range checks come in the same pass
        built = cls(**kwargs)
    except (ValueError, TypeError) as e:
        if not _required_missing(fields, kwargs):
            with_defaults = f" (with the defaults of invalid {', '.join(invalid)})" if invalid else ""
            _fail(errors, path, f"invalid {cls.__name__}{with_defaults}: {e}")
        raise _Invalid from None
    if unknown or invalid:
        raise _Invalid
    return built


def _convert_fields(
    cls: type, fields: Mapping[str, dataclasses.Field], value: Mapping[str, Any], path: str,
    errors: list[str], component: ComponentHook | None,
) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """(the fields that converted, the names of those that did not or are required and missing)."""
    hints = typing.get_type_hints(cls)
    kwargs, invalid = {}, []
    for name, f in fields.items():
        sub = _join(path, name)
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(f"{sub}: required field is missing")
                invalid.append(name)
            continue
        try:
            kind = f.metadata.get("kind")
            if kind is not None and component is not None:
                kwargs[name] = _convert_components(kind, hints[name], value[name], sub, errors, component)
            else:
                kwargs[name] = _convert(hints[name], value[name], sub, errors, component)
        except _Invalid:
            invalid.append(name)
    return kwargs, invalid


def _required_missing(fields: Mapping[str, dataclasses.Field], kwargs: Mapping[str, Any]) -> bool:
    """Whether a field without a default is absent from ``kwargs`` (the class cannot be built)."""
    return any(
        f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in kwargs
        for n, f in fields.items()
    )


def _convert_components(
    kind: str, tp: Any, value: Any, path: str, errors: list[str], component: ComponentHook
) -> Any:
    """A component field: one spec, an optional spec, or a sequence of specs."""
    if value is None:
        return None
    inner = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, (list, tuple)):
            _fail(errors, path, f"expected a list of {kind} components, got {_describe(value)}")
        out, bad = [], False
        for i, v in enumerate(value):
            res = component(kind, inner[0], v, f"{path}[{i}]")
            bad = bad or is_missing(res)
            out.append(res)
        if bad:
            raise _Invalid
        return tuple(out)
    res = component(kind, inner[0] if inner else tp, value, path)
    if is_missing(res):
        raise _Invalid
    return res


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
