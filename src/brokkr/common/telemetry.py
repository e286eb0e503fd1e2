"""OpenTelemetry traces over OTLP/HTTP: off unless an endpoint is configured.

Both services call `setup()` once per process (the broker once per worker, after
the fork: the exporter's thread does not survive one). With no endpoint nothing
of OpenTelemetry is imported and `span()` hands back one shared no-op context
manager, so tracing that is off costs a function call and a `None` check.

Settings (`[telemetry]`, or BROKKR__TELEMETRY__*):
  endpoint      OTLP/HTTP base URL of a collector, e.g. http://otel-collector:4318
                (spans go to <endpoint>/v1/traces); empty turns tracing off.
  service_name  service.name of the spans (default brokkr-broker / brokkr-agent).
  sample_ratio  share of new traces recorded, 0..1; a trace begun upstream keeps
                its caller's decision.
  ca_file       PEM bundle for an https endpoint with a private CA.
  timeout       seconds one export may take.
The standard OTEL_* variables the SDK reads (OTEL_EXPORTER_OTLP_TRACES_HEADERS for
an API key, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_SCHEDULE_DELAY...) apply as well.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from brokkr import __version__

SpanKind = Literal["internal", "server", "client"]


class TelemetrySettings(BaseModel):
    """Where traces go; see the module docstring."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str = ""
    service_name: str = ""
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    ca_file: str | None = None
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(
                f"{value!r} is not an OTLP/HTTP URL; set BROKKR__TELEMETRY__ENDPOINT to "
                "http(s)://host:4318 (the collector's OTLP/HTTP receiver) or leave it empty"
            )
        return value.rstrip("/")


class _Tracing:
    """This process's tracer and provider; both None while tracing is off."""

    tracer: Any = None
    provider: Any = None


_state = _Tracing()
_OFF = contextlib.nullcontext()


def enabled() -> bool:
    """True once `setup` turned tracing on in this process."""
    return _state.tracer is not None


def setup(settings: TelemetrySettings, default_service: str) -> bool:
    """Start exporting spans when an endpoint is set; True when tracing is on."""
    if not settings.endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.sampling import (  # noqa: PLC0415
        ParentBased,
        TraceIdRatioBased,
    )

    resource = Resource.create(
        {"service.name": settings.service_name or default_service, "service.version": __version__}
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
    )
    exporter = OTLPSpanExporter(
        endpoint=f"{settings.endpoint}/v1/traces",
        certificate_file=settings.ca_file or None,
        timeout=settings.timeout,
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _state.provider, _state.tracer = provider, provider.get_tracer("brokkr", __version__)
    return True


def shutdown() -> None:
    """Export what is buffered and stop (at process exit)."""
    if _state.provider is not None:
        _state.provider.shutdown()
    _state.tracer = _state.provider = None


def span(
    name: str,
    kind: SpanKind = "internal",
    attributes: Mapping[str, Any] | None = None,
    parent: Any = None,
    inside_only: bool = False,
) -> contextlib.AbstractContextManager[Any]:
    """A context manager around one span (the current span's child, or `parent`'s).

    `inside_only`: only as part of a trace already begun (a Kubernetes call inside a
    reconcile, not the health probe's every few seconds). Off, or outside a trace with
    `inside_only`: a shared no-op that yields None.
    """
    if _state.tracer is None:
        return _OFF
    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.trace import SpanKind as Kind  # noqa: PLC0415

    if inside_only and not trace.get_current_span().get_span_context().is_valid:
        return _OFF

    return _state.tracer.start_as_current_span(
        name, context=parent, kind=Kind[kind.upper()], attributes=attributes
    )


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current trace context (W3C traceparent) to outgoing request headers."""
    if _state.tracer is None:
        return
    from opentelemetry.propagate import inject as put  # noqa: PLC0415

    put(headers)


def extract(headers: Mapping[str, str]) -> Any:
    """The trace context an incoming request carries (a parent for `span`), or None."""
    if _state.tracer is None:
        return None
    from opentelemetry.propagate import extract as take  # noqa: PLC0415

    return take(headers)


@contextlib.contextmanager
def traced(settings: TelemetrySettings, default_service: str) -> Iterator[bool]:
    """`setup` for the length of a block, then `shutdown` (flushes the last spans)."""
    on = setup(settings, default_service)
    try:
        yield on
    finally:
        if on:
            shutdown()
