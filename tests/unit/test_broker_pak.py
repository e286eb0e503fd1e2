"""PAK generation and verification are byte-compatible with Brokkr v1."""

import pytest

from brokkr.broker import pak

VECTOR = "brokkr_BR3rVsDa_GK3QN7CDUzYc6iKgMkJ98M2WSimM5t6U8"
VECTOR_HASH = "4c697273df3d764cba950bb5c04368097685f09259f5bd880d892cf1ff9f4cdd"


def test_reference_test_vector():
    assert pak.hash_pak(VECTOR) == VECTOR_HASH
    assert pak.matches(VECTOR, VECTOR_HASH)
    assert pak.matches(VECTOR, VECTOR_HASH.upper())
    assert (pak.PUBLIC_DEFAULT_PAK, pak.PUBLIC_DEFAULT_HASH) == (VECTOR, VECTOR_HASH)


def test_generated_paks_have_the_shape_and_verify():
    first, second = pak.generate(), pak.generate()
    assert first.pak != second.pak
    prefix, short, long = first.pak.split("_")
    assert prefix == "brokkr" and len(short) == 8 and len(long) == 32
    assert short.isalnum() and long.isalnum()
    assert pak.matches(first.pak, first.hash)
    assert not pak.matches(second.pak, first.hash)
    assert pak.is_valid_hash(first.hash)


@pytest.mark.parametrize("bad", ["", "brokkr", "brokkr__x", "other_a_b", "brokkr_a_b_c"])
def test_malformed_paks_never_match(bad: str):
    assert not pak.matches(bad, VECTOR_HASH)
    with pytest.raises(pak.InvalidPak):
        pak.hash_pak(bad)
