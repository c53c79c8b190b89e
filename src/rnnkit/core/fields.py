"""The machinery under rnnkit's configs: the errors rnnkit raises, `opt()` fields with their help and
range, validation, the dict round trip and the CLI options derived from a dataclass, and how
messages spell a field (`batch` to Python callers, `--batch` on the command line).

Each field carries its CLI help and its allowed range in `metadata`; `validate` checks them,
`add_arguments` turns them into argparse options and `from_dict` refuses unknown keys, so the
rules are written once. The config dataclasses themselves are in config.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import field
from typing import Any


class RnnkitError(Exception):
    """A problem the user can fix; the CLI prints it as one line. Exit status 1 (runtime)."""

    exit_code = 1


class UsageError(RnnkitError):
    """Bad arguments or bad input data. Exit status 2."""

    exit_code = 2


def opt(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
        choices: tuple | None = None, above: float | None = None, cli: bool = True, **kw) -> Any:
    """A config field with its help text and range: lo <= v <= hi, v > above, v in choices."""
    meta = dict(help=help, lo=lo, hi=hi, choices=choices, above=above, cli=cli)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


class Spelling:
    """How messages name a config field: `batch` to Python callers, `--batch` on the command line
    (the CLI switches it on at start). The one place a field name becomes a flag."""

    flags = False


def param(name: str) -> str:
    """A config field as the user spelled it: the field name, or its flag under the CLI."""
    return flag_name(name) if Spelling.flags else name


def setting(name: str, value: Any) -> str:
    """A field set to a value, as the user would write it: `encoding='bytes'` or `--encoding bytes`."""
    return f"{flag_name(name)} {value}" if Spelling.flags else f"{name}={value!r}"


def _check_type(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is list and args == (float,):  # numbers: ints accepted
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in value):
            raise UsageError(f"{param(name)} must be a list of numbers (got {value!r})")
        return [float(v) for v in value]
    if origin is list or hint is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{param(name)} must be a list of strings (got {value!r})")
        return value
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise UsageError(f"{param(name)} must be of type {hint.__name__} (got {value!r})")
    return value


class Config:
    """Mixin for the config dataclasses: validation, dict round trip, CLI options."""

    def validate(self) -> "Config":
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            m = f.metadata
            if v is None or not m:
                continue
            flag = param(f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise UsageError(f"{flag} must be a finite number (got {v})")
            if m.get("choices") and v not in m["choices"]:
                raise UsageError(f"{flag} must be one of {', '.join(map(str, m['choices']))} (got {v!r})")
            if m.get("lo") is not None and v < m["lo"]:
                raise UsageError(f"{flag} must be >= {m['lo']} (got {v})")
            if m.get("hi") is not None and v > m["hi"]:
                raise UsageError(f"{flag} must be <= {m['hi']} (got {v})")
            if m.get("above") is not None and v <= m["above"]:
                raise UsageError(f"{flag} must be > {m['above']} (got {v})")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "config") -> "Config":
        if not isinstance(d, dict):
            raise UsageError(f"{where} must be a JSON object (got {type(d).__name__})")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UsageError(f"{where} has unknown key(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(sorted(names))}")
        try:
            values = {k: _check_type(k, v, hints[k]) for k, v in d.items()}
            return cls(**values).validate()
        except UsageError as e:  # say which file (or checkpoint) holds the bad value
            raise UsageError(f"{where}: {e}") from None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: tuple = ()) -> None:
        """Add one `--flag` per field (defaults suppressed so `from_args` sees what was given)."""
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip or not f.metadata.get("cli", True):
                continue
            hint = hints[f.name]
            if typing.get_origin(hint) in (typing.Union, types.UnionType):
                hint = next(a for a in typing.get_args(hint) if a is not type(None))
            default = f.default if f.default is not dataclasses.MISSING else \
                (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            kw: dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS,
                                      help=f"{f.metadata.get('help', '')} (default: {default})")
            if hint is bool:
                parser.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, **kw)
                continue
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
            if typing.get_origin(hint) is list:  # a repeatable option: --level 80 --level 95
                kw["action"] = "append"
                hint = typing.get_args(hint)[0]
            kw["type"] = hint if hint in (int, float, str) else str
            parser.add_argument(flag_name(f.name), metavar=f.name.upper(), **kw)

    @classmethod
    def from_args(cls, ns: argparse.Namespace, base: "Config | None" = None) -> "Config":
        """The config from parsed args: the flags given, over `base` (or the defaults)."""
        given = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
        cfg = dataclasses.replace(base, **given) if base is not None else cls(**given)
        return cfg.validate()


def shown(name: "str | bytes | Any") -> str:
    """A file name as text that can be printed, drawn or written as UTF-8. Python keeps the bytes
    of a name that are not UTF-8 as lone surrogates ('\\udcff'), which no UTF-8 writer and no font
    accepts; here they become '\\xff' escapes. Other lone surrogates become '\\udXXX' escapes."""
    import os
    s = os.fsdecode(name) if isinstance(name, (bytes, os.PathLike)) else str(name)
    try:
        raw = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


# ---- the labs (rnnkit lab) ----
