"""``jsonio.loads`` returns exactly what ``json.loads`` returns, whichever parser ran."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reportgen import jsonio

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: orjson refuses them, json reads them
    | st.floats()  # NaN and infinities: written by json, refused by orjson
    | st.text()  # lone surrogates included
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(_values)
def test_loads_matches_the_standard_library(value: Any) -> None:
    text = json.dumps(value)
    assert _same(jsonio.loads(text), json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        "1e400",
        '"\\ud800"',
        "18446744073709551616",
        "NaN",
        "-0",
        "[1.0, 5e-324]",
    ],
)
def test_documents_orjson_refuses_or_reads_differently(text: str) -> None:
    assert _same(jsonio.loads(text), json.loads(text))


@pytest.mark.parametrize("text", ["", "{", "[1,]", "'a'", "\ufeff[]"])
def test_invalid_documents_raise_the_standard_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        jsonio.loads(text)


# --------------------------------------------------------------------------- canonical text

#: Each caller's ``json.dumps`` arguments before ``jsonio.canonical`` replaced them, and
#: the ``canonical`` options that write the same bytes (stored rows, ids and digests
#: are made from this text, so not one byte may change).
_CALL_SITES: list[tuple[dict[str, Any], dict[str, bool]]] = [
    # journal args, rg_town_state values, world log, run history
    ({"sort_keys": True, "separators": (",", ":")}, {}),
    # checkpoint states, report JSON
    ({"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False}, {"ascii": False}),
    # bundle manifest values, fleet cache keys and summaries
    ({"sort_keys": True}, {"compact": False}),
]


@given(_values)
def test_canonical_writes_each_callers_old_bytes(value: Any) -> None:
    for old, options in _CALL_SITES:
        try:
            expected = json.dumps(value, **old)
        except (TypeError, ValueError):
            continue
        assert jsonio.canonical(value, **options) == expected


def test_canonical_forms_pinned() -> None:
    """The three forms, spelled out (a change to the defaults fails here, not in a golden file)."""
    value = {"b": "é\u202e", "a": [1, 2.5, None]}
    assert jsonio.canonical(value) == '{"a":[1,2.5,null],"b":"\\u00e9\\u202e"}'
    assert jsonio.canonical(value, ascii=False) == '{"a":[1,2.5,null],"b":"é\u202e"}'
    assert jsonio.canonical(value, compact=False) == '{"a": [1, 2.5, null], "b": "\\u00e9\\u202e"}'
