"""`spikeprep.inputs.yaml_edit.set_keys`: the one comment-keeping writer of both ``--fix``
commands. Every line outside the blocks of the keys set stays byte for byte; the result parses
to the old mapping with the new values."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeprep.errors import ConfigError
from spikeprep.inputs.yaml_edit import set_keys

REGISTRATION = {"model": "homography", "matrix": [[1.26, -0.066, 30.0], [0.066, 1.26, 30.0], [2e-05, -1.5e-05, 1.0]],
                "overlap": [31, 37, 272, 195], "spike_size": [128, 200], "rgb_size": [240, 320]}

KEYS = ["spike_h", "spike_w", "flipud", "spike_rate", "frame_rate", "exposure", "window_shift", "note"]
values = st.one_of(st.integers(-1000, 1000), st.booleans(), st.floats(-1e6, 1e6, allow_nan=False),
                   st.text("abcxyz _-", min_size=1, max_size=8).map(lambda s: "t" + s))
comments = st.text("abc #:-'\"", max_size=12).map(lambda s: "# " + s)


@st.composite
def yaml_files(draw):
    """A config-like YAML file: keys with scalar, list or nested values, comment lines, blank
    lines, trailing comments; returns (text, parsed)."""
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, min_size=1, max_size=6))
    lines, parsed = [], {}
    for key in keys:
        for _ in range(draw(st.integers(0, 2))):
            lines.append(draw(st.sampled_from([draw(comments), "", "   "])))
        kind = draw(st.sampled_from(["scalar", "list", "nested"]))
        if kind == "scalar":
            value = draw(values)
            text = yaml.safe_dump({key: value}, default_flow_style=True).strip()[1:-1]
            trailing = draw(st.one_of(st.just(""), comments.map(lambda c: "   " + c)))
            lines.append(text + trailing)
        elif kind == "list":
            value = draw(st.lists(st.integers(0, 99), min_size=1, max_size=3))
            lines.append(f"{key}:")
            lines += [f"  - {v}" for v in value]
        else:
            value = {"a": draw(st.integers(0, 9)), "b": [1, 2]}
            lines += [f"{key}:", f"  a: {value['a']}", "  # inside", "  b: [1, 2]"]
        parsed[key] = value
    if draw(st.booleans()):
        lines.append(draw(comments))
    text = "\n".join(lines) + ("\n" if draw(st.booleans()) else "")
    assert yaml.safe_load(text) == parsed, text
    return text, parsed


def _others(text: str, keys) -> list[str]:
    """The lines outside the blocks of ``keys`` (a key line and its indented lines)."""
    out, inside = [], False
    for line in text.splitlines():
        starts = any(line.startswith(f"{k}:") for k in keys)
        if starts or (inside and (line[:1] in (" ", "\t") and line.strip())):
            inside = True
            continue
        inside = False
        out.append(line)
    return [line for line in out if line.strip()]


@settings(max_examples=80, deadline=None)
@given(yaml_files(), st.dictionaries(st.sampled_from(KEYS + ["registration"]),
                                     st.one_of(values, st.just(REGISTRATION)), min_size=1, max_size=3))
def test_other_lines_are_byte_identical(file, new):
    text, parsed = file
    edited = set_keys(text, new)
    assert yaml.safe_load(edited) == {**parsed, **new}
    assert _others(edited, new) == _others(text, new)
    kept = [line for line in text.splitlines() if line.startswith("#")]
    assert [line for line in edited.splitlines() if line.startswith("#")] == kept


def test_a_trailing_comment_on_the_key_line_is_kept():
    text = "# my rig\nspike_h: 250\nflipud: true   # rows bottom-up\nwindow_shift: 0 # measured\n"
    edited = set_keys(text, {"flipud": False, "window_shift": -12})
    assert edited == "# my rig\nspike_h: 250\nflipud: false   # rows bottom-up\nwindow_shift: -12 # measured\n"


def test_a_block_is_replaced_and_new_keys_appended():
    text = "spike_h: 4\nregistration:\n  model: affine   # old\n  matrix: x\n\n# after\nspike_w: 5"
    edited = set_keys(text, {"registration": REGISTRATION, "window_shift": 3})
    lines = edited.splitlines()
    assert lines[0] == "spike_h: 4" and "# after" in lines and "spike_w: 5" in lines
    assert "# old" not in edited and lines[-1] == "window_shift: 3"
    assert yaml.safe_load(edited) == {"spike_h": 4, "spike_w": 5, "registration": REGISTRATION, "window_shift": 3}


def test_crlf_files_stay_crlf():
    edited = set_keys("# c\r\nspike_h: 4\r\n", {"spike_h": 5, "flipud": False})
    assert edited == "# c\r\nspike_h: 5\r\nflipud: false\r\n"


def test_an_empty_file_gets_the_keys():
    assert yaml.safe_load(set_keys("# only a comment\n", {"spike_h": 4})) == {"spike_h": 4}


@pytest.mark.parametrize("text", ["{spike_h: 4,\n flipud: true}\n", "- 1\n- 2\n", "a: [1,\n"])
def test_files_it_cannot_edit_are_refused(text):
    with pytest.raises(ConfigError):
        set_keys(text, {"flipud": False})
