"""Read samples out of a server's Prometheus exposition (what /metrics serves)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.servers import Running


def samples(running: Running) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from the server's exposition."""
    text = running.server.core.metrics.exposition().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(running: Running, name: str, **labels: str) -> float | None:
    """One sample's value, None when the server does not export it."""
    return samples(running).get((name, tuple(sorted(labels.items()))))


def by_label(running: Running, name: str, label: str, **fixed: str) -> dict[str, float]:
    """label value -> sample value, over the samples of `name` that also carry `fixed`."""
    out = {}
    for (sample, labels), number in samples(running).items():
        found = dict(labels)
        if sample == name and all(found.get(k) == v for k, v in fixed.items()):
            out[found[label]] = number
    return out
