"""The relay's figures in Prometheus's text format (``prometheus-client``), for its operator.

Served at ``/metrics`` behind the operator token (``app.py``) when the request asks for
Prometheus's format (``Accept: text/plain`` or OpenMetrics, as a Prometheus scraper sends,
or ``?format=prometheus``); other requests get the same figures as JSON.

Each relay app has its own registry (several relays may run in one process: tests, the
embedded relay). Per frame the relay only adds to plain integers (frames, bytes, one
histogram bucket) and a float (the histogram's sum): prometheus-client's own
``Histogram.observe`` takes a lock and walks its buckets, several times the cost of the
rest of the forwarding accounting. Everything is turned into metric families when scraped.

| metric | type | what |
| --- | --- | --- |
| ``tether_relay_connections`` | gauge | WebSocket connections open now |
| ``tether_relay_sessions`` | gauge | sessions whose host is attached to this process |
| ``tether_relay_client_addresses`` | gauge | client addresses holding host ends |
| ``tether_relay_frames_forwarded_total`` | counter | binary frames handed on to the other end |
| ``tether_relay_bytes_forwarded_total`` | counter | their bytes |
| ``tether_relay_drops_total{reason}`` | counter | refusals and dropped frames by reason (``routing.Drop``) |
| ``tether_relay_credential_refusals_total{reason}`` | counter | refused credentials by reason |
| ``tether_relay_queued_bytes`` / ``_peak`` / ``_limit`` | gauge | frames waiting for slow readers |
| ``tether_relay_forward_seconds`` | histogram | from reading a frame to queueing (or publishing) it |
| ``process_*`` | | the process's memory, CPU, descriptors (prometheus-client's ProcessCollector) |

``deploy/scale/grafana-dashboard.json`` charts these.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from tether.auth.tokens import Refusal

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FORWARD_BUCKETS = (0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0, 10.0)


@dataclass
class Figures:
    """What the relay's state says when scraped (filled by the endpoint, read by the collector)."""

    connections: int = 0
    sessions: int = 0
    addresses: int = 0
    queued_bytes: int = 0
    queued_bytes_peak: int = 0
    queued_bytes_limit: int = 0
    frames: int = 0
    bytes: int = 0
    drops: Mapping[str, int] = field(default_factory=dict)
    refusals: Mapping[str, int] = field(default_factory=dict)


class _FiguresCollector(Collector):
    def __init__(self, metrics: RelayMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        f = self.metrics.figures
        yield GaugeMetricFamily("tether_relay_connections", "WebSocket connections open now", f.connections)
        yield GaugeMetricFamily("tether_relay_sessions", "Sessions whose host is attached to this process", f.sessions)
        yield GaugeMetricFamily("tether_relay_client_addresses", "Client addresses holding host ends", f.addresses)
        yield CounterMetricFamily("tether_relay_frames_forwarded", "Binary frames forwarded", f.frames)
        yield CounterMetricFamily("tether_relay_bytes_forwarded", "Bytes of binary frames forwarded", f.bytes)
        drops = CounterMetricFamily("tether_relay_drops", "Refusals and dropped frames by reason", labels=["reason"])
        for reason, count in sorted(f.drops.items()):
            drops.add_metric([reason], count)
        yield drops
        refusals = CounterMetricFamily(
            "tether_relay_credential_refusals", "Refused credentials by reason", labels=["reason"]
        )
        # Every reason, zero included, so a dashboard sees a stable shape (as for drops).
        known = {str(reason): 0 for reason in Refusal} | {"missing": 0}
        for reason, count in sorted((known | dict(f.refusals)).items()):
            refusals.add_metric([reason], count)
        yield refusals
        yield GaugeMetricFamily("tether_relay_queued_bytes", "Bytes queued for slow readers", f.queued_bytes)
        yield GaugeMetricFamily("tether_relay_queued_bytes_peak", "Most bytes ever queued at once", f.queued_bytes_peak)
        yield GaugeMetricFamily("tether_relay_queued_bytes_limit", "Relay-wide queue budget", f.queued_bytes_limit)
        yield self.metrics.forward_histogram()


class RelayMetrics:
    """One relay's registry: frame counters, the forwarding histogram, and its figures at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.frames = 0
        self.bytes = 0
        self.forward_counts = [0] * (len(FORWARD_BUCKETS) + 1)  # per bucket (not cumulative), the last is +Inf
        self.forward_sum = 0.0
        self.figures = Figures()
        self.registry.register(_FiguresCollector(self))
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, process_cpu_seconds_total, ...

    def forwarded(self, size: int, seconds: float) -> None:
        """Count one frame of ``size`` bytes that took ``seconds`` to forward."""
        self.frames += 1
        self.bytes += size
        self.forward_counts[bisect_left(FORWARD_BUCKETS, seconds)] += 1  # the first bound >= seconds ("le")
        self.forward_sum += seconds

    def forward_histogram(self) -> HistogramMetricFamily:
        """``tether_relay_forward_seconds`` as Prometheus reads it (cumulative buckets)."""
        buckets, total = [], 0
        for bound, count in zip((*FORWARD_BUCKETS, float("inf")), self.forward_counts, strict=True):
            total += count
            buckets.append((floatToGoString(bound), total))  # type: ignore[no-untyped-call]
        return HistogramMetricFamily(
            "tether_relay_forward_seconds",
            "Seconds from reading a frame to queueing it for the other end (or publishing it to its process)",
            buckets=buckets,
            sum_value=self.forward_sum,
        )

    def exposition(self, figures: Figures, accept: str) -> tuple[bytes, str]:
        """The figures in the format ``accept`` prefers (OpenMetrics or Prometheus text): body and content type."""
        figures.frames, figures.bytes = self.frames, self.bytes
        self.figures = figures
        if "application/openmetrics-text" in accept:
            return generate_openmetrics(self.registry), OPENMETRICS_TYPE  # type: ignore[no-untyped-call]
        return generate_latest(self.registry), TEXT_TYPE


def wants_prometheus(accept: str, query_format: str | None) -> bool:
    """Whether a /metrics request asks for Prometheus's format rather than JSON."""
    if query_format is not None:
        return query_format in ("prometheus", "openmetrics")
    return "text/plain" in accept or "application/openmetrics-text" in accept
