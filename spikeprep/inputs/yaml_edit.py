"""Set top-level keys of a YAML mapping file, keeping every other byte: comments, blank lines, key
order, quoting and the other keys' formatting. The one writer of both ``--fix`` commands
(``check-sync --fix``: window_shift / flipud; ``register --fix``: the ``registration:`` block).

A top-level key's *block* is its line (the key at column 0) and the lines after it that are
indented or blank, up to the last indented one. `set_keys` replaces the block of each key it
sets (a scalar's trailing ``# comment`` on the key line is kept) and appends keys the file lacks
at its end; every other line stays byte for byte. The result is parsed again and must be the old
mapping with the new values, or nothing is returned (`ConfigError`): a file this line-based rule
cannot edit safely (a top-level flow mapping, say) is never half-edited.
"""

from __future__ import annotations

import re

import yaml

from ..errors import ConfigError

#: a block mapping key at column 0: a plain word or a quoted string, then ':' and a space or the end
_KEY = re.compile(r"""^(?P<key>[A-Za-z_][\w.-]*|"[^"\n]*"|'[^'\n]*')[ \t]*:(?=[ \t]|\r?$|\n)""")


def _load(text: str, path) -> dict:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("config.yaml is not valid YAML", path=path, found=str(exc).splitlines()[0],
                          expected="a YAML mapping") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("config.yaml must be a mapping", path=path, found=type(raw).__name__,
                          expected="top-level keys (spike_h: ..., spike_w: ...)")
    return raw


def _key_of(line: str) -> str | None:
    """The top-level key a line starts, or None (indented, a comment, a list item, ``---``)."""
    m = _KEY.match(line)
    if m is None:
        return None
    key = m.group("key")
    return key[1:-1] if key[0] in "\"'" else key


def _blocks(lines: list[str]) -> list[tuple[str | None, int, int]]:
    """``(key or None, first line, end line)`` spans covering ``lines`` in order."""
    spans, i = [], 0
    while i < len(lines):
        key = _key_of(lines[i])
        if key is None:
            spans.append((None, i, i + 1))
            i += 1
            continue
        end, j = i + 1, i + 1
        while j < len(lines) and (lines[j][:1] in (" ", "\t") or not lines[j].strip()):
            if lines[j].strip():
                end = j + 1
            j += 1
        spans.append((key, i, end))
        i = end
    return spans


def _flow(value) -> str:
    """One value on one line (flow style: ``[1, 2]``, ``{a: 1}``, scalars as YAML writes them)."""
    return yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=1 << 30).strip()[1:-1]


def _dump(key: str, value, newline: str) -> list[str]:
    """``key: value`` lines: a mapping value as a block of ``  sub: flow`` lines, else one line."""
    head = _flow(key)
    if isinstance(value, dict) and value:
        return [f"{head}:{newline}"] + [f"  {_flow(k)}: {_flow(v)}{newline}" for k, v in value.items()]
    return [f"{head}: {_flow(value)}{newline}"]


def _with_comment(old: list[str], key: str, new: list[str], newline: str) -> list[str]:
    """``new`` with the trailing ``# comment`` of a one-line ``old`` scalar kept (found where the
    text before a `` #`` still parses to the old line's mapping)."""
    if len(old) != 1 or len(new) != 1:
        return new
    line = old[0].rstrip("\r\n")
    before = yaml.safe_load(line)
    for m in re.finditer(r"[ \t]+#", line):
        try:
            if yaml.safe_load(line[:m.start()]) == before:
                return [new[0].rstrip("\r\n") + line[m.start():] + newline]
        except yaml.YAMLError:
            continue
    return new


def set_keys(text: str, values: dict, path=None) -> str:
    """``text`` (a YAML mapping) with the top-level ``values`` set (see the module docstring);
    ConfigError when the file is not a mapping or cannot be edited line by line."""
    old = _load(text, path)
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    out, done = [], set()
    for key, begin, end in _blocks(lines):
        block = lines[begin:end]
        if key is None or key not in values:
            out += block
        elif key not in done:
            out += _with_comment(block, key, _dump(key, values[key], newline), newline)
            done.add(key)
    missing = [k for k in values if k not in done]
    if missing and out and not out[-1].endswith(("\n", "\r")):
        out[-1] += newline
    for key in missing:
        out += _dump(key, values[key], newline)
    result = "".join(out)
    expected = {**old, **values}
    if _load(result, path) != expected:
        raise ConfigError("config.yaml cannot be edited line by line", path=path,
                          found="a layout the key-by-key editor does not follow (a flow mapping, a "
                                "key split over lines?)",
                          expected="one 'key: value' block per top-level key",
                          fix=f"set {', '.join(map(str, values))} by hand: " +
                              yaml.safe_dump(values, sort_keys=False, default_flow_style=True).strip())
    return result
