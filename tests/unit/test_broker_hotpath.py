"""The hot path's cache of validated heartbeat bodies stays bounded and exact."""

from __future__ import annotations

import pytest

from brokkr.broker import hotpath


def test_reports_are_validated_once_and_the_cache_stays_bounded():
    hotpath._REPORTS.clear()
    for latency in range(3 * hotpath._REPORTS_KEPT):
        body = b'{"k8s_reachable":true,"k8s_api_latency_ms":%d}' % latency
        report = hotpath._report(body)
        assert report.k8s_api_latency_ms == latency
        assert len(hotpath._REPORTS) <= hotpath._REPORTS_KEPT
    same = b'{"k8s_reachable":false}'
    assert hotpath._report(same) is hotpath._report(same)


def test_long_bodies_are_not_kept_and_invalid_ones_go_to_the_full_stack():
    hotpath._REPORTS.clear()
    padded = b'{"k8s_reachable":true' + b" " * hotpath._REPORT_BYTES_KEPT + b"}"
    assert hotpath._report(padded).k8s_reachable is True
    assert padded not in hotpath._REPORTS
    invalid = b'{"k8s_api_latency_ms":"slow"}'
    with pytest.raises(hotpath._Declined) as declined:
        hotpath._report(invalid)
    assert declined.value.body == invalid
    assert invalid not in hotpath._REPORTS
