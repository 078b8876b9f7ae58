"""The manifest's JSON <-> frozen-dataclass machinery and field validators (`spikeprep.cache.manifest`
declares the schema with them): `_Record` (``to_dict``/``from_dict`` driven by field metadata),
`_spec` (a field's converter, expected text, JSON key, omit-while-default), and the converters, each
``(value, where, path) -> value`` raising CacheError that names the field, the value and the fix."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field

from ..errors import CacheError


class _Record:
    """Dict round trip for the frozen dataclasses below (field order = JSON keys)."""

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("omit_default") and value == _default(f):
                continue
            out[_key(f)] = _jsonable(value)
        return out

    @classmethod
    def from_dict(cls, raw, where: str, path=None):
        """Build from a JSON object; CacheError naming ``where`` for a missing/unknown/bad key."""
        _need(isinstance(raw, dict), f"{where} is not an object", type(raw).__name__, "an object", path)
        names = {_key(f): f for f in dataclasses.fields(cls)}
        missing = [n for n, f in names.items() if n not in raw and _default(f) is _NO_DEFAULT]
        _need(not missing, f"{where} incomplete", f"missing {', '.join(missing)}",
              ", ".join(names), path)
        values = {}
        for name, f in names.items():
            value = raw.get(name, _default(f))
            convert = f.metadata.get("convert")
            try:
                values[f.name] = convert(value, f"{where}.{name}", path) if convert else value
            except (TypeError, ValueError, KeyError) as exc:
                raise _invalid(f"{where}.{name} has a bad value", f"{value!r} ({exc})",
                               f.metadata.get("expected", "see the manifest schema"), path) from None
        return cls(**values)


_NO_DEFAULT = object()


def _key(f: dataclasses.Field) -> str:
    """A field's JSON key: its name unless the on-disk key differs (``key`` metadata)."""
    return f.metadata.get("key", f.name)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return _NO_DEFAULT


def _jsonable(value):
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _invalid(what, found, expected, path) -> CacheError:
    return CacheError(f"cache manifest: {what}", path=path, found=found, expected=expected,
                      fix="rebuild the cache with 'spikeprep voxelize ... --force'")


def _need(cond, what, found, expected, path=None) -> None:
    if not cond:
        raise _invalid(what, found, expected, path)


def _choice(options):
    def convert(value, where, path):
        _need(value in options, where, repr(value), " | ".join(options), path)
        return value
    return convert


def _shape(value, where, path):
    _need(isinstance(value, (list, tuple)) and len(value) == 3 and all(
        isinstance(v, int) and v > 0 for v in value), where, repr(value), "3 positive integers", path)
    return tuple(value)


def _int(value, where, path):
    _need(isinstance(value, int) and not isinstance(value, bool) and value >= 0, where, repr(value),
          "an integer >= 0", path)
    return value


def _number(value, where, path) -> float:
    _need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
          where, repr(value), "a finite number", path)
    return value


def _numbers(value, where, path) -> tuple:
    _need(isinstance(value, (list, tuple)), where, repr(value), "a list of finite numbers", path)
    return tuple(_number(v, f"{where}[{i}]", path) for i, v in enumerate(value))


def _box(value, where, path) -> tuple:
    _need(isinstance(value, (list, tuple)) and len(value) == 4 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value) and value[0] < value[2]
        and value[1] < value[3], where, repr(value), "[x0, y0, x1, y1] integers with x0 < x1, y0 < y1", path)
    return tuple(value)


def _size(value, where, path) -> tuple:
    _need(isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value), where, repr(value),
        "[height, width], positive integers", path)
    return tuple(value)


def _matrix(value, where, path) -> tuple:
    ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(
        isinstance(row, (list, tuple)) and len(row) == 3 for row in value)
    _need(ok, where, repr(value), "a 3x3 list of finite numbers", path)
    return tuple(_numbers(row, f"{where}[{i}]", path) for i, row in enumerate(value))


def _spec(convert=None, expected=None, key=None, **kw):
    metadata = {"convert": convert, "expected": expected} if convert else {}
    if key is not None:
        metadata["key"] = key
    if "omit_default" in kw:
        metadata["omit_default"] = kw.pop("omit_default")
    return field(metadata=metadata, **kw)
