"""Array literals for the grouped statements' parameters (grouping.array_literal)."""

from __future__ import annotations

from uuid import UUID

import pytest

from brokkr.broker.grouping import array_literal


def test_values_become_a_postgresql_array_literal():
    agent = UUID("0b9a1c1e-4a5f-4e2b-9c55-2f5d3c1a7e10")
    assert array_literal([agent, ""]) == '{"0b9a1c1e-4a5f-4e2b-9c55-2f5d3c1a7e10",""}'
    assert array_literal([True, False, None]) == "{t,f,NULL}"
    assert array_literal([12, None, 0]) == "{12,NULL,0}"
    assert array_literal([]) == "{}"


@pytest.mark.parametrize("text", ['a"b', "a\\b"])
def test_text_that_would_need_escaping_is_refused(text: str):
    with pytest.raises(ValueError, match="plain values only"):
        array_literal([text])
