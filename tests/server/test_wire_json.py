"""The server's JSON reader (orjson first, the standard library for what orjson reads
differently) gives exactly the standard library's values and errors."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecduck.errors import InvalidArgumentError
from vecduck.server.wire import parse_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5), max_leaves=40
)


def same(a: object, b: object) -> bool:
    """Equal with types: 1 and 1.0 and True differ, and -0.0 keeps its sign."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=300, deadline=None)
@given(values, st.booleans())
def test_values_are_the_standard_librarys(value: object, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert same(parse_json(body), json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b"[18446744073709551616]",  # 2**64: orjson would read a float
        b'{"limit": -123456789012345678901234567890}',
        b"[0.00012345678901234567, 18446744073709551615]",
        b"[1e400, -1e400, 5e-324, -0.0]",
        b'["\\ud800", "\\udfff x"]',  # lone surrogates
        b'{"a": 1, "a": 2}',
        b" \n[1, 2]\t",
        b"[" + b"0.00012345678901234567, " * 500 + b"18446744073709551616]",  # a big integer after many fractions
    ],
)
def test_bodies_orjson_reads_differently(body: bytes) -> None:
    assert same(parse_json(body), json.loads(body))


@pytest.mark.parametrize(
    "body", [b"[NaN]", b'{"a": Infinity}', b"[-Infinity]", b"{", b"[1,]", b"\xff\xfe", b"[" * 100_000]
)
def test_what_json_refuses_is_a_400(body: bytes) -> None:
    with pytest.raises(InvalidArgumentError, match="Failed to parse the request body as JSON"):
        parse_json(body)
