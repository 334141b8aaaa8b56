"""The one way from a config node to a typed settings object, and the value checks settings types share.

:func:`settings_from_config` turns a config group (an OmegaConf node or a plain mapping) into a frozen
dataclass: unknown keys are refused, missing keys take the dataclass defaults (a field without a default is
required), nested dataclasses, tuples of them and mappings of them are built the same way, lists become
tuples. The settings type validates itself on construction (``__post_init__``), each rule written once in
the type that owns the key; a type whose messages depend on where it sits (``SamplingSettings``: the CLI's
``--top-p``, ``backtest.sampling.top_p``) is validated by its ``validate(prefix=...)`` here.

Code defaults are the YAML's defaults (``tests/config/test_settings_defaults.py`` keeps them equal); a key
whose YAML value interpolates another group (``${seed}``, ``${data.horizon}``) has no code default.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from typing import Any, Callable, Mapping, Sequence, TypeVar

from kronos.data.errors import quoted
from kronos.errors import ConfigError, KronosUserError

T = TypeVar("T")
Check = Callable[[Any], "str | None"]  # the value -> what is wrong with it (None: fine)


def plain(node: Any) -> Any:
    """An OmegaConf node as plain containers (interpolations resolved); anything else unchanged."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def settings_from_config(cls: type[T], node: Any, prefix: str, base: T | None = None) -> T:
    """``cls`` (a dataclass) built from the config group ``node`` found at ``prefix`` (e.g. ``backtest``).

    Args:
        cls: the settings type; its ``__post_init__`` checks every value.
        node: the group (DictConfig or mapping); an instance of ``cls`` is returned as it is.
        prefix: the group's config path, put before each key in messages.
        base: where keys the group leaves out come from (None: ``cls``'s defaults). A nested group's base is its
            parent's default for that field (``backtest.sampling`` left partial keeps the backtest's T 0.6).
    Raises:
        ConfigError: ``<prefix> has unknown keys [...]``, ``<prefix> lacks [...]``, or the type's own refusal of
            a value (a ``ForecastInputError`` of a nested ``SamplingSettings`` is re-raised as a ConfigError).
    """
    node = plain(node)
    if isinstance(node, cls):
        return node
    if not isinstance(node, Mapping):
        raise ConfigError(f"{prefix} must be a mapping of settings, got {quoted(node)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(node) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix} has unknown keys {unknown}: valid keys are {sorted(fields)}")
    missing = [name for name, f in fields.items() if name not in node and base is None and _required(f)]
    if missing:
        raise ConfigError(f"{prefix} lacks {missing}: set {', '.join(f'{prefix}.{k}' for k in missing)}")
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, f"{prefix}.{name}", _default(fields[name], base))
              for name, value in node.items()}
    try:
        built = dataclasses.replace(base, **values) if base is not None else cls(**values)
    except ConfigError:
        raise
    except KronosUserError as err:  # a nested type's own user error, reported as the config's
        raise ConfigError(str(err)) from None
    validate = getattr(built, "validate", None)
    if callable(validate):
        try:
            validate(prefix=f"{prefix}.")
        except KronosUserError as err:
            raise ConfigError(str(err)) from None
    return built


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]


def _default(f: dataclasses.Field, base: Any) -> Any:
    """The value a field has when its key is left out: ``base``'s, else the field's default (None if required)."""
    if base is not None:
        return getattr(base, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _convert(hint: Any, value: Any, key: str, default: Any = None) -> Any:
    """``value`` shaped for a field typed ``hint``: nested dataclasses built (missing keys from ``default`` when it
    is an instance), lists as tuples, whole numbers as floats where a float is meant."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key, default) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return settings_from_config(hint, value, key, default if isinstance(default, hint) else None)
    if origin is tuple and (isinstance(value, (list, tuple, str)) or value is None):
        items = (value,) if isinstance(value, str) else tuple(value or ())
        item = args[0] if args else Any
        if dataclasses.is_dataclass(item):
            return tuple(settings_from_config(item, v, f"{key}[{i}]") if isinstance(v, Mapping) else v
                         for i, v in enumerate(items))
        return items
    if origin in (collections.abc.Mapping, dict) and isinstance(value, Mapping) and len(args) == 2 \
            and dataclasses.is_dataclass(args[1]):
        return {k: settings_from_config(args[1], v, f"{key}.{k}") if isinstance(v, Mapping) else v
                for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def require(key: str, value: Any, check: Check, example: Any) -> None:
    """Raise ``ConfigError("<key>=<value> <problem>: pass e.g. <key>=<example>")`` when ``check`` finds one."""
    problem = check(value)
    if problem:
        raise ConfigError(f"{key}={quoted(value)} {problem}: pass e.g. {key}={example}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole(low: int = 1, *, none: bool = False, also: Sequence[int] = ()) -> Check:
    """A whole number >= ``low`` (or one of ``also``; None when ``none``)."""
    def check(value: Any) -> str | None:
        if value is None and none:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        if value < low and value not in also:
            extra = f" (or {', '.join(map(str, also))})" if also else ""
            return f"must be a whole number >= {low}{extra}"
        return None
    return check


def number(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False, high_open: bool = False,
           none: bool = False) -> Check:
    """A finite number in [low, high] (``low_open``/``high_open``: the bound itself excluded)."""
    def check(value: Any) -> str | None:
        if value is None and none:
            return None
        if not _is_number(value) or not math.isfinite(value):
            return "must be a finite number"
        if value < low or (low_open and value == low) or value > high or (high_open and value == high):
            if math.isinf(high):
                return f"must be a number {'>' if low_open else '>='} {low:g}"
            lo = "(" if low_open else "["
            hi = ")" if high_open else "]"
            return f"must lie in {lo}{low:g}, {high:g}{hi}"
        return None
    return check


def boolean(value: Any) -> str | None:
    """true or false."""
    return None if isinstance(value, bool) else "must be true or false"


def choice(*allowed: Any) -> Check:
    """One of ``allowed``."""
    def check(value: Any) -> str | None:
        return None if value in allowed and not isinstance(value, bool) else f"must be one of {list(allowed)}"
    return check


def text(value: Any) -> str | None:
    """A non-empty string."""
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def optional_text(value: Any) -> str | None:
    """null or a non-empty string."""
    return None if value is None else text(value)


def date_or_null(value: Any) -> str | None:
    """null or a date/time pandas reads (e.g. 2024-01-31)."""
    if value is None:
        return None
    import pandas as pd

    try:
        pd.Timestamp(str(value))
    except (ValueError, TypeError, OverflowError):
        return "must be a date such as 2024-01-31, or null"
    return None


def levels(value: Any) -> str | None:
    """A non-empty list of numbers in (0, 1)."""
    if not isinstance(value, (list, tuple)) or not value:
        return "must be a non-empty list of numbers in (0, 1)"
    inside = number(0, 1, low_open=True, high_open=True)
    return next(("must be a list of numbers in (0, 1)" for v in value if inside(v)), None)
