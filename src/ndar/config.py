"""Typed dataclass configs loaded from YAML with dotted `key=value` overrides.

Habit taken from litgpt: a config is a (nested) dataclass with a docstring per field; unknown keys are
an error that names the key and the valid ones; every run writes its resolved config beside its
outputs (`save_config`).

Values are checked when loaded, so a wrong one is refused naming its field before any stage runs:
the type from the annotation, and the range or choices from the class's `LIMITS` mapping
(`{"batch_size": ">= 1", "lr": "> 0", "device": r"re:auto|cpu|cuda(:[0-9]+)?"}`, or a tuple of allowed
values). A `__post_init__` that raises `ConfigError` has its message prefixed with the section.
A field that was renamed stays in the class's `RENAMED` mapping (`{"old": "new"}`), so a config that
still uses the old name is refused saying what to write instead, rather than with a bare unknown key.
"""

from __future__ import annotations

import copy
import dataclasses
import operator
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ndar.utils.io import atomic_write_text

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not fit the dataclass it is loaded into."""


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ['a.b=3', 'c=[1,2]'] into {'a.b': 3, 'c': [1, 2]} (values parsed as YAML)."""
    parsed: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.epochs=3)")
        key, value = item.split("=", 1)
        parsed[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return parsed


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _coerce(tp: Any, value: Any, where: str) -> Any:
    if value is None:
        return None
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        key_tp, val_tp = args if len(args) == 2 else (Any, Any)
        return {_key(key_tp, k, where): _coerce(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if tp is Path:
        return Path(str(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads `1e-3` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: expected one of {typing.get_args(tp)}, got {value!r}")
        return value
    return value


def _key(tp: Any, key: Any, where: str) -> Any:
    """A mapping key converted to the key type. Why: a dotted override (`priors.class_thresholds.3=0.2`)
    or a quoted YAML key gives the string "3", which an int-keyed lookup would silently never find."""
    if tp is int and isinstance(key, str) and _INT_KEY.fullmatch(key.strip()):
        key = int(key)
    return _coerce(tp, key, f"{where} key {key!r}")


_INT_KEY = re.compile(r"[+-]?\d+")


def check_value(tp: Any, value: Any, where: str) -> Any:
    """`value` converted to type `tp` as a config loader does; `ConfigError` naming `where` if it cannot be."""
    return _coerce(tp, value, where)


_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def _within(value: Any, rule: Any) -> bool:
    if isinstance(rule, tuple):
        return value in rule
    if rule.startswith("re:"):
        return isinstance(value, str) and re.fullmatch(rule[3:], value) is not None
    for part in rule.split(","):  # "> 0, <= 1"
        symbol, bound = part.split()
        if not _COMPARE[symbol](value, float(bound)):
            return False
    return True


def check_limits(cfg: Any, where: str = "config") -> None:
    """Refuse a value outside its field's `LIMITS` rule (None, where allowed, always passes)."""
    for name, rule in getattr(type(cfg), "LIMITS", {}).items():
        value = getattr(cfg, name)
        if value is not None and not _within(value, rule):
            expected = f"one of {rule}" if isinstance(rule, tuple) else rule.removeprefix("re:")
            raise ConfigError(f"{where}.{name}: expected {expected}, got {value!r}")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from a mapping; unknown keys are an error naming the valid keys."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    renamed = {old: new for old, new in getattr(cls, "RENAMED", {}).items() if old in data}
    if renamed:
        old, new = next(iter(renamed.items()))
        raise ConfigError(f"{where}.{old}: renamed to {new!r}; write {new}: {data[old]!r}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        cfg = cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{where}: {err}") from err
    except ConfigError as err:  # from this class's __post_init__ (nested sections are built above)
        raise ConfigError(f"{where}.{err}") from None
    check_limits(cfg, where)
    return cfg


def to_dict(cfg: Any) -> Any:
    """Plain YAML-safe structure of a config (Paths become strings)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    loaded = yaml.safe_load(path.read_text())
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
    return loaded or {}


def deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """`child` over `base`: sections merge key by key, any other value (lists too) replaces the base's."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


BASE_KEY = "_base_"


def is_base_file(path: str | Path) -> bool:
    """A shared base (`_base*.yaml`): loaded through the configs that name it, never run on its own."""
    return Path(path).name.startswith("_base")


def read_yaml_with_base(path: str | Path) -> dict[str, Any]:
    """The mapping in YAML file `path`, deep-merged over the file its `_base_` key names (relative to
    `path`). One level only: a chain of bases hides where a value comes from, which is the thing a
    reader of a fine-tune config most needs to see, so a base with its own `_base_` is refused."""
    path = Path(path)
    data = _read_mapping(path)
    if BASE_KEY not in data:
        return data
    base_name = data.pop(BASE_KEY)
    if not isinstance(base_name, str) or not base_name:
        raise ConfigError(f"{path}: {BASE_KEY} must be a file name, got {base_name!r}")
    base_path = path.parent / base_name
    base = _read_mapping(base_path)
    if BASE_KEY in base:
        raise ConfigError(
            f"{base_path}: a base config may not have its own {BASE_KEY} (one level of inheritance only; "
            f"it is the base of {path})"
        )
    return deep_merge(base, data)


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> T:
    """Load `cls` from a YAML file (optional) and apply dotted overrides such as `train.epochs=3`."""
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        data = read_yaml_with_base(path)
        where = str(path)
    merged = copy.deepcopy(data)
    for key, value in parse_overrides(overrides).items():
        _set_dotted(merged, key, value)
    try:
        return from_dict(cls, merged, where)
    except ConfigError:
        blamed = _blame_override(cls, data, overrides)
        if blamed is not None:
            raise blamed from None
        raise


def _blame_override(cls: type, data: dict, overrides) -> ConfigError | None:
    """The error of the first override that fails on top of the file alone, naming that override
    (an error in `train.epochs=x` is the command line's, not the YAML file's); None if none does."""

    def error_of(values: dict) -> str | None:
        try:
            from_dict(cls, values, cls.__name__)
        except ConfigError as err:
            return str(err)
        return None

    base = error_of(copy.deepcopy(data))
    for item in overrides:
        trial = copy.deepcopy(data)
        try:
            for key, value in parse_overrides([item]).items():
                _set_dotted(trial, key, value)
        except ConfigError as err:
            return ConfigError(f"override {item!r}: {err}")
        error = error_of(trial)
        if error is not None and error != base:
            return ConfigError(f"override {item!r}: {error}")
    return None


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically) so every output folder says how it was made."""
    path = Path(path)
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def config_changes(saved: str | Path, cfg: Any, ignore: tuple[str, ...] = ()) -> list[str]:
    """How `cfg` differs from the config saved at `saved`, as 'key: old -> new' lines (dotted keys;
    keys under an `ignore` prefix skipped). Lets a stage refuse to reuse outputs made otherwise.

    A key the saved config lacks is no change when `cfg` holds its default: the option was added
    after that run, and a new option's default keeps the behaviour from before it (so finished runs
    stay finished across an upgrade, while setting the new option still counts)."""
    old = yaml.safe_load(Path(saved).read_text()) or {}
    return dict_changes(old, to_dict(cfg), ignore, defaults=to_dict(type(cfg)()))


def dict_changes(
    old: dict, new: dict, ignore: tuple[str, ...] = (), defaults: dict | None = None
) -> list[str]:
    """`config_changes` between two plain mappings (e.g. a config stored inside a JSON record); with
    `defaults`, a key absent from `old` whose new value is its default is not a change."""
    old = _flatten(yaml.safe_load(yaml.safe_dump(old, sort_keys=False)) or {})
    new = _flatten(yaml.safe_load(yaml.safe_dump(new, sort_keys=False)) or {})
    default = _flatten(yaml.safe_load(yaml.safe_dump(defaults or {}, sort_keys=False)) or {})
    keys = [
        k for k in dict.fromkeys([*old, *new]) if not any(k == i or k.startswith(i + ".") for i in ignore)
    ]
    return [
        f"{k}: {old.get(k, '(absent)')} -> {new.get(k, '(absent)')}"
        for k in keys
        if old.get(k) != new.get(k) and not (k not in old and k in default and new.get(k) == default[k])
    ]


def describe_changes(changes: list[str], most: int = 6) -> str:
    """'a: 1 -> 2; b: x -> y' (the first `most`, then '; ...'): the changes in one error message."""
    return "; ".join(changes[:most]) + ("; ..." if len(changes) > most else "")
