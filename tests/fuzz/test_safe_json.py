"""backend.safe_json: the nesting depth is measured without recursion and exactly."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend import safe_json

# strings full of the characters that could fool a bracket counter
tricky_text = st.text(alphabet='[]{}"\\ab\n\u2603', max_size=12)
documents = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=40,
)


def true_depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(true_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(true_depth, value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(documents, st.booleans())
def test_depth_is_exact_whatever_the_strings_hold(document, ascii_only):
    text = json.dumps(document, ensure_ascii=ascii_only)
    assert safe_json.nesting_depth(text) == true_depth(document)
    assert safe_json.nesting_depth(text.encode()) == true_depth(document)


def test_brackets_inside_strings_cannot_hide_real_nesting():
    # closers inside a string would cancel the openers that follow if strings were not skipped
    hidden = '["' + "]" * 1000 + '",' + "[" * 1000 + "]" * 1001
    assert safe_json.nesting_depth(hidden) == 1001
    escaped = '["\\"]]]]",' + "[" * 100 + "]" * 101
    assert safe_json.nesting_depth(escaped) == 101


def test_deep_json_is_refused_before_parsing_and_says_why():
    with pytest.raises(safe_json.UntrustedJSONError, match=r"header nests 100000 levels deep, more than the 64"):
        safe_json.loads("[" * 100_000 + "]" * 100_000, what="header")
    assert safe_json.loads("[" * 64 + "]" * 64, what="x") is not None


def test_size_and_syntax_errors_are_named():
    with pytest.raises(safe_json.UntrustedJSONError, match="is 11 bytes, more than the 10 allowed"):
        safe_json.loads(b"[1,2,3,4,5]", what="doc", max_bytes=10)
    with pytest.raises(safe_json.UntrustedJSONError, match="doc is not valid JSON"):
        safe_json.loads(b"{'single': 'quotes'}", what="doc")
    with pytest.raises(safe_json.UntrustedJSONError, match="not valid JSON"):
        safe_json.loads(b"[" + b"9" * 5000 + b"]", what="doc")  # past Python's integer digit limit
    with pytest.raises(safe_json.UntrustedJSONError, match="not valid JSON"):
        safe_json.loads(b'"\xff"', what="doc")


def test_an_unterminated_string_counts_as_running_to_the_end():
    assert safe_json.nesting_depth('["abc') == 1
    assert safe_json.nesting_depth('"\\' * 1000) == 0
