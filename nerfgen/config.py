"""Typed configs from YAML files and command-line overrides, every key and value checked.

:func:`build_config` fills a config dataclass from a partial, nested mapping (missing keys keep
their defaults) and checks each value against its field's annotation: a bad key or value raises one
``ValueError`` naming the source (a file path, ``defaults``, ``command line``), the dotted key, what
was expected and what was given. Once an instance is built (nested ones first), its method
``validate(self, source: str) -> None``, if it has one, checks cross-field rules and raises
``ValueError`` messages that start with ``source`` (``"<source>: grid"`` for a config nested at key
``grid``). Building a config touches no files, devices or torch.

A config class may declare keys its kind of run never reads, with the reason, in a class attribute
``unused_keys: ClassVar[dict[str, str]]`` (fields it inherits, or keys earlier versions wrote): such
a key is an error that gives the reason, and :func:`config_to_dict` leaves it out. An unknown key
gets the close matches among the allowed keys ("did you mean"). :func:`stored_config` reads the
config a run directory stores, dropping the declared keys that an earlier version wrote.

>>> from dataclasses import dataclass
>>> @dataclass
... class Camera:
...     fov: tuple[float, float] = (40.0, 50.0)
>>> build_config(Camera, {"fov": [30, 35]}, "command line")
Camera(fov=(30.0, 35.0))
>>> build_config(Camera, {"fov": "wide"}, "cam.yaml")
Traceback (most recent call last):
ValueError: cam.yaml: fov: expected a list of 2 finite numbers, got 'wide'
>>> build_config(Camera, {"fvo": [30, 35]}, "cam.yaml")
Traceback (most recent call last):
ValueError: cam.yaml: unknown option 'fvo' for Camera; did you mean 'fov'?
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import math
import re
import types
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

_C = TypeVar("_C")
_UNIONS = (Union, types.UnionType)
_SCALARS = {bool: ("true or false", "booleans"), int: ("an integer", "integers"),
            float: ("a finite number", "finite numbers"), str: ("a string", "strings"), type(None): ("null", "nulls")}
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_YAML_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")  # PyYAML reads 1e-3 as a string


class ConfigWarning(UserWarning):
    """Something in a stored config was left out (keys an earlier version wrote that nothing reads)."""


class _Mismatch(Exception):
    """A value does not fit an annotation (turned into a ``ValueError`` at the field)."""


def build_config(cls: type[_C], values: Mapping[str, Any] | None, source: str) -> _C:
    """Builds dataclass ``cls`` from a partial, nested mapping, checking every key and value.

    Annotations: ``bool``, ``int`` (3.0 converts), ``float`` (ints convert), ``str``, ``Literal[...]``,
    ``tuple[X, Y]``, ``tuple[X, ...]``, ``list[X]``, ``dict[K, V]``, ``Any``, nested dataclasses (a
    mapping, or an instance passed through), unions of these tried in order, other classes by isinstance.

    Args:
        cls: The config dataclass.
        values: Options by field name (nested configs as mappings); None: all defaults.
        source: Where the values come from, for messages (a file path, ``defaults``, ...).

    Returns:
        The config, values converted (lists to tuples, ints to floats) and validated.

    Raises:
        ValueError: An unknown or missing key, a value of the wrong type, or a failed ``validate``.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"build_config needs a dataclass type, got {cls!r}")
    if values is not None and not isinstance(values, Mapping):
        raise ValueError(f"{source}: expected a mapping of {cls.__name__} options, got {values!r}")
    return _build(cls, values or {}, source, prefix="")


def _build(cls: type[_C], values: Mapping[str, Any], source: str, prefix: str) -> _C:
    """Builds ``cls`` whose keys sit under dotted ``prefix`` (``""`` or ``"grid."``), then validates it."""
    kwargs = _convert_fields(cls, values, source, prefix)
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{source}: missing option {prefix + missing[0]!r} for {cls.__name__}")
    try:
        config = cls(**kwargs)
    except ValueError as exc:  # a dataclass's own checks (__post_init__) do not know the file
        raise ValueError(str(exc) if source in str(exc) else f"{source}: {prefix[:-1] or cls.__name__}: {exc}") from exc
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate(f"{source}: {prefix[:-1]}" if prefix else source)
    return config


def _convert_fields(cls: type, values: Mapping[str, Any], source: str, prefix: str) -> dict[str, Any]:
    """``values`` checked against the fields of dataclass ``cls`` and converted, by field name."""
    unused, allowed = unused_keys(cls), _allowed(cls)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key in unused:
            raise ValueError(f"{source}: {path}: {unused[key]}")
        if key not in allowed:
            raise ValueError(f"{source}: unknown option {path!r} for {cls.__name__}; {_suggest(cls, key, prefix)}")
        kwargs[key] = _field_value(hints[key], value, source, path)
    return kwargs


def unused_keys(cls: type) -> dict[str, str]:
    """The keys config class ``cls`` declares its kind of run never reads, with the reason for each."""
    return dict(getattr(cls, "unused_keys", None) or {})


def _allowed(cls: type) -> list[str]:
    """The keys a mapping of ``cls`` options may hold, sorted."""
    unused = unused_keys(cls)
    return sorted(f.name for f in dataclasses.fields(cls) if f.init and f.name not in unused)


def _sections(cls: type) -> dict[str, type]:
    """The fields of ``cls`` that hold a nested config (alone or in a union), by name."""
    hints, out = typing.get_type_hints(cls), {}
    for name in _allowed(cls):
        tp = hints[name]
        nested = [t for t in (typing.get_args(tp) if typing.get_origin(tp) in _UNIONS else (tp,))
                  if isinstance(t, type) and dataclasses.is_dataclass(t)]
        if nested:
            out[name] = nested[0]
    return out


def _dotted_keys(cls: type, prefix: str = "") -> list[str]:
    """Every key of ``cls`` and of its nested sections, dotted (``grid.resolution``)."""
    sections = _sections(cls)
    out = []
    for name in _allowed(cls):
        out.append(prefix + name)
        if name in sections:
            out += _dotted_keys(sections[name], f"{prefix}{name}.")
    return out


def _suggest(cls: type, key: Any, prefix: str) -> str:
    """What to say about unknown ``key`` of ``cls``: the close matches among the keys allowed at its
    level and in the sections below it (``did you mean 'grid.resolution'?``), else all the keys."""
    own = _allowed(cls)
    found = _close(str(key), own + [k for k in _dotted_keys(cls) if "." in k])
    if not found:
        return f"expected one of {own}"
    return "did you mean " + " or ".join(repr(prefix + k) for k in found) + "?"


def _close(key: str, keys: list[str], most: int = 3) -> list[str]:
    """The ``keys`` that ``key`` is likely a typo of, likeliest first: similar spellings (difflib's
    ratio, of the whole dotted key or of its last part), the same letters in another order, and keys
    that ``key`` begins."""
    scores = {}
    for k in keys:
        leaf = k.rsplit(".", 1)[-1]
        score = max(difflib.SequenceMatcher(None, key, k).ratio(), difflib.SequenceMatcher(None, key, leaf).ratio())
        if (len(key) >= 3 and leaf.startswith(key)) or sorted(key) == sorted(leaf):
            score = max(score, 0.8)
        scores[k] = score
    best = max(scores.values(), default=0.0)
    found = sorted((k for k, v in scores.items() if v >= 0.75 and v >= best - 0.15), key=lambda k: -scores[k])
    return found[:most]


def _field_value(tp: Any, value: Any, source: str, path: str) -> Any:
    """``value`` converted to annotation ``tp``, or one ``ValueError`` naming source, key and value."""
    try:
        return _convert(tp, value, source, path)
    except _Mismatch:
        pass
    hint = ""
    if isinstance(value, str) and _YAML_EXPONENT.fullmatch(value):
        hint = " (YAML reads an exponent without a decimal point as a string: write 1.0e-3, not 1e-3)"
    raise ValueError(f"{source}: {path}: expected {_describe(tp)}, got {value!r}{hint}")


def _convert(tp: Any, value: Any, source: str, path: str) -> Any:
    """``value`` checked and converted to annotation ``tp``; raises ``_Mismatch`` when it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in _UNIONS:
        return _convert_union(args, value, source, path)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Mismatch
    if origin in (tuple, list) or tp in (tuple, list):
        return _convert_sequence(tp, value, source, path)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch
        key_tp, value_tp = args or (Any, Any)
        return {_convert(key_tp, k, source, path): _convert(value_tp, v, source, f"{path}.{k}")
                for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _build(tp, value, source, prefix=f"{path}.")
        raise _Mismatch
    return _convert_scalar(tp, value)


def _convert_union(args: tuple, value: Any, source: str, path: str) -> Any:
    """``value`` as the first alternative in ``args`` that accepts it.

    A nested config's own error (say an unknown key inside it) is raised when no alternative fits.
    """
    nested_error = None
    for tp in args:
        try:
            return _convert(tp, value, source, path)
        except _Mismatch:
            continue
        except ValueError as exc:
            nested_error = nested_error or exc
    if nested_error is not None:
        raise nested_error
    raise _Mismatch


def _convert_sequence(tp: Any, value: Any, source: str, path: str) -> tuple | list:
    """A list or tuple ``value`` as ``tuple[...]`` or ``list[...]``, each element converted."""
    origin, args = typing.get_origin(tp) or tp, typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise _Mismatch
        item_types = args
    else:
        item_types = (args[0] if args else Any,) * len(value)
    items = [_convert(t, v, source, f"{path}[{i}]") for i, (t, v) in enumerate(zip(item_types, value))]
    return tuple(items) if origin is tuple else items


def _convert_scalar(tp: Any, value: Any) -> Any:
    """``value`` as ``bool``/``int``/``float``/``str``/``None`` (no bool passes as a number) or a class."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and number and (isinstance(value, int) or value.is_integer()) and abs(value) < 2**63:
        return int(value)
    if tp is float and number and math.isfinite(value):
        return float(value)
    if (tp is str and isinstance(value, str)) or (tp is type(None) and value is None):
        return value
    if tp not in _SCALARS and isinstance(tp, type) and isinstance(value, tp):
        return value
    if tp in _SCALARS or isinstance(tp, type):
        raise _Mismatch
    raise TypeError(f"unsupported config annotation {tp!r}")


def _describe(tp: Any, plural: bool = False) -> str:
    """What annotation ``tp`` accepts, in words (``"a list of 2 numbers"``); ``plural`` for elements."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _SCALARS:
        return _SCALARS[tp][plural]
    if tp is Any or tp is object:
        return "values" if plural else "anything"
    if plural:
        return f"items each {_describe(tp)}"
    if origin in _UNIONS:
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if (origin is tuple or tp is tuple) and args and args[-1] is not Ellipsis:
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_describe(args[0], plural=True)}"
        return f"a list of {len(args)} items ({', '.join(_describe(a) for a in args)})"
    if origin in (tuple, list) or tp in (tuple, list):
        return f"a list of {_describe(args[0] if args else Any, plural=True)}"
    if origin is dict or tp is dict:
        return "a mapping"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} options"
    return f"a {getattr(tp, '__name__', tp)}"


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain, JSON-ready dict of config instance ``config`` (tuples as lists, the keys its class
    declares unused left out); builds back equal."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config_to_dict needs a dataclass instance, got {config!r}")
    return _plain(config)


def _plain(value: Any) -> Any:
    """``value`` with every config turned into a dict of its used fields and every tuple, at any depth,
    into a list."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        unused = unused_keys(type(value))
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in unused}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping of options in a YAML file (an empty file gives ``{}``).

    Raises:
        FileNotFoundError: ``{path}: config file not found``.
        ValueError: ``{path}: malformed YAML (...)``, or the top level is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: malformed YAML ({exc})") from None
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of options at the top level, got {type(values).__name__}")
    return values


def load_config(cls: type[_C], path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> _C:
    """Config ``cls`` from a YAML file (``path``; None: the defaults) with top-level ``overrides``.

    Overrides whose value is None (unset command-line flags) are ignored; the others are checked
    with source ``command line``, then all is built with source ``str(path)`` or ``defaults``.
    """
    values = read_yaml(path) if path is not None else {}
    return override_config(cls, values, str(path) if path is not None else "defaults", overrides)


def override_config(cls: type[_C], values: Mapping[str, Any], source: str,
                    overrides: Mapping[str, Any] | None = None) -> _C:
    """Config ``cls`` from ``values`` (from ``source``) with top-level ``overrides`` on top: those
    whose value is None are ignored, the others checked with source ``command line``, a nested
    section merged into the one ``values`` has (:func:`merge_overrides`)."""
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    values = dict(values)
    values.update(_convert_fields(cls, merge_overrides(values, given), "command line", prefix=""))
    return build_config(cls, values, source)


def stored_config(cls: type[_C], values: Mapping[str, Any], source: str,
                  overrides: Mapping[str, Any] | None = None) -> _C:
    """Config ``cls`` as a run directory stores it (``run.json``'s ``config``, written by this
    nerfgen or an earlier one), with ``overrides`` on top as :func:`load_config` puts them.

    Keys that ``cls`` (or a section in it) declares unused, which earlier versions wrote, are left
    out with one :class:`ConfigWarning` naming them; anything else unknown or bad is an error.
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"{source}: expected a mapping of {cls.__name__} options, got {values!r}")
    kept, dropped = _without_unused(cls, values, "")
    if dropped:
        warnings.warn(ConfigWarning(f"{source}: left out {', '.join(map(repr, dropped))}: written by an earlier "
                                    f"nerfgen, never used by this kind of run"), stacklevel=2)
    return override_config(cls, kept, source, overrides)


def _without_unused(cls: type, values: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], list[str]]:
    """``values`` of config ``cls`` without the keys it (or a section in it) declares unused, and those
    keys, dotted."""
    unused, sections = unused_keys(cls), _sections(cls)
    kept, dropped = {}, []
    for key, value in values.items():
        if key in unused:
            dropped.append(prefix + key)
        elif key in sections and isinstance(value, Mapping):
            kept[key], below = _without_unused(sections[key], value, f"{prefix}{key}.")
            dropped += below
        else:
            kept[key] = value
    return kept, dropped


def merge_overrides(values: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with each nested section merged into the one ``values`` has: ``{"depth":
    {"weight": 0.1}}`` over ``{"depth": {"sigma": 0.2}}`` keeps the sigma."""
    out = dict(overrides)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(values.get(key), Mapping):
            out[key] = {**values[key], **merge_overrides(values[key], value)}
    return out


_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def parse_overrides(pairs: list[str], source: str = "--set") -> dict[str, Any]:
    """``["lr=0.01", "depth.weight=0.1"]`` -> ``{"lr": 0.01, "depth": {"weight": 0.1}}`` (values read
    as YAML; a dotted key sets one key of a nested section)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{source}: expected KEY=VALUE (e.g. depth.weight=0.1), got {pair!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{source}: {key}: cannot read {text!r} as a YAML value ({exc})") from None
        if isinstance(value, str) and _EXPONENT.fullmatch(value):  # YAML 1.1 reads 1e-3 as a string
            value = float(value)
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{source}: {key}: {part} is set to a value and a section at once")
        node[last] = value
    return out


def check_device(value: str, source: str, key: str = "device") -> None:
    """Checks a device name: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (for ``validate`` hooks).

    Raises:
        ValueError: ``{source}: {key}: expected one of ...`` for any other value.
    """
    if not (isinstance(value, str) and _DEVICE.fullmatch(value)):
        raise ValueError(f"{source}: {key}: expected one of 'auto', 'cpu', 'cuda', 'cuda:N' (N a GPU index), "
                         f"got {value!r}")


def shipped_configs() -> list[str]:
    """Names of the configs that ship with nerfgen (``nerfgen/configs/*.yaml``)."""
    root = importlib.resources.files("nerfgen.configs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def config_path(name: str | Path) -> Path:
    """The YAML file ``--config NAME`` means: a shipped config by name (``ngp`` is
    ``nerfgen/configs/ngp.yaml``, in the installed package), or a file by its path.

    Raises:
        FileNotFoundError: neither a file nor a shipped config, naming what ships.
    """
    path = Path(name)
    if path.is_file() or path.suffix in (".yaml", ".yml", ".json") or len(path.parts) > 1:
        return path  # a file (read_yaml names it when it is missing)
    shipped = importlib.resources.files("nerfgen.configs") / f"{name}.yaml"
    if not shipped.is_file():
        raise FileNotFoundError(f"{name}: no such config file, and not a shipped config "
                                f"(shipped: {', '.join(shipped_configs())})")
    return Path(str(shipped))
