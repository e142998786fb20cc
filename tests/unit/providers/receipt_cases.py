"""What the receipt-parser tests of the three providers share: arbitrary JSON, for their hypothesis tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
)
#: Any JSON value (arrays and objects nested a few levels), as a push body or as the value of a report's field.
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
#: A report field's value: a scalar, or an array or object of a few. A field holding any non-scalar must be refused as
#: one holding a shallow one is, so deeper nesting (JSON_VALUES, up to 20 leaves per value, times ~10 fields times 5
#: items) only made each example ~40 ms to draw and the three providers' field tests 34 s of `make test`.
FIELD_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=3,
)
