"""Traces: one from an HTTP submission through its workflows to each activity and the
SMTP send, over OpenTelemetry.

Recorded only when they go somewhere: OTLP (HTTP) at OTEL_EXPORTER_OTLP_ENDPOINT, or an
exporter a test passes in. Otherwise nothing is installed and nothing costs anything.
Temporal carries the context in its headers through the SDK's OpenTelemetryPlugin
(the older TracingInterceptor ends workflow spans at once, empty).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin, create_tracer_provider
from temporalio.plugin import SimplePlugin

from settings import Settings

_installed = False


def configure(settings: Settings, service: str, exporter: SpanExporter | None = None) -> bool:
    """Install this process's tracer provider if traces go anywhere; whether they do."""
    global _installed
    if exporter is None:
        if settings.otel_exporter_otlp_endpoint is None:
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The variable's meaning in OpenTelemetry: the base URL, traces under /v1/traces.
        endpoint = f"{settings.otel_exporter_otlp_endpoint.rstrip('/')}/v1/traces"
        exporter = OTLPSpanExporter(endpoint=endpoint)
    # Replay-safe: a workflow replayed on another worker does not record its spans again.
    provider = create_tracer_provider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _installed = True
    return True


def flush() -> None:
    """Send the spans still batched: for a process that leaves without its exit handlers."""
    provider = trace.get_tracer_provider()
    if _installed and hasattr(provider, "shutdown"):
        provider.shutdown()


def installed() -> bool:
    return _installed


def plugins() -> list[SimplePlugin]:
    """For `Client.connect`: workers made from the client take them too."""
    return [OpenTelemetryPlugin(add_temporal_spans=True)] if _installed else []
