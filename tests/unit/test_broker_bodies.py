"""The JSON body screen: what it refuses, with which code and field."""

from __future__ import annotations

import pytest

from brokkr.broker.bodies import MAX_JSON_DEPTH, decode_json, is_json, is_yaml, media_type
from brokkr.broker.errors import ApiError


def refused(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        decode_json(raw)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (b'{"name": "a\\u0000b"}', "name", "NUL"),
        (b'{"labels": ["ok", "\\ud800"]}', "labels.1", "surrogate"),
        (b'{"a": {"b": ' + b"1" * 5000 + b"}}", "a.b", "5000 digits"),
        (b'{"n": NaN}', "n", "NaN"),
        (b'{"n": -Infinity}', "n", "Infinity"),
        (b'{"n": 1e99999}', "n", "out of range"),
        (b'{"k\\u0000": 1}', "k\x00", "key contains the NUL"),
    ],
)
def test_refused_values_name_their_field(raw: bytes, field: str, words: str):
    error = refused(raw)
    assert error.code == "invalid_value"
    assert error.details is not None
    assert [e["field"] for e in error.details["errors"]] == [field]
    assert words in error.message


def test_nesting_is_bounded_before_python_recursion_is():
    assert refused(b"[" * 100_000).code == "nesting_too_deep"
    assert refused(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)).code == (
        "nesting_too_deep"
    )
    assert decode_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None


def test_ordinary_values_pass():
    body = b'{"name": "caf\\u00e9 \\ud83d\\ude00", "n": -12345678901234567890, "x": 1.5}'
    assert decode_json(body) == {"name": "café 😀", "n": -12345678901234567890, "x": 1.5}
    assert decode_json(b"  ", allow_empty=True) is None
    assert refused(b"{").code == "invalid_json"
    assert refused(b'"\xff"').code == "invalid_json"


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("text/json-ish", False),
        ("application/jsonx", False),
        ("text/json+json", False),
    ],
)
def test_json_media_types(content_type: str, expected: bool):
    parsed = media_type(content_type)
    assert parsed is not None and is_json(parsed) is expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/yaml", True),
        ("Text/YAML; charset=UTF-8", True),
        ("application/x-yaml", True),
        ("application/vnd.k8s+yaml", True),
        ("text/plain", True),
        # Matched by substring before: every one of these was read as YAML.
        ("application/not-yaml", False),
        ("image/yaml", False),
        ("text/plainish", False),
        ("multipart/form-data; boundary=yaml", False),
    ],
)
def test_yaml_media_types_are_matched_by_the_parsed_type(content_type: str, expected: bool):
    parsed = media_type(content_type)
    assert parsed is not None and is_yaml(parsed) is expected


@pytest.mark.parametrize("content_type", ["yaml", "text/", "/json", "text/plain; charset", "a b/c"])
def test_malformed_media_types_do_not_parse(content_type: str):
    assert media_type(content_type) is None
