"""`digits monitor`: the dashboard's key figures from a server's /metrics, as a terminal table.

Two scrapes `--interval` seconds apart give the rates (requests/s, errors/s, latency percentiles
over the interval); the per-version table shows drift, confidence, live and test accuracy. It
refreshes in place until Ctrl-C; `--once` prints one table and exits (for scripts).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import urllib.request
from collections import defaultdict

DRIFT_ALERT_PSI = 0.2  # core.profile.DRIFT_ALERT_PSI (not imported: the CLI starts stdlib-only)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="live table of a server's key metrics (throughput, errors, drift, accuracy)",
        description="Print throughput, latency, errors, versions, confidence, drift and live "
        "accuracy from a `digits serve` Prometheus endpoint, refreshed in place.",
    )
    parser.add_argument(
        "--metrics",
        metavar="URL",
        default="http://127.0.0.1:9100/metrics",
        help="the server's metrics endpoint (%(default)s)",
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="seconds between scrapes (2)"
    )
    parser.add_argument("--once", action="store_true", help="print one table and exit")
    parser.set_defaults(handler=run)


def scrape(url: str) -> Samples:
    """(sample name, labels) -> value of every sample at `url` (CommandError, exit code SERVICE,
    when it cannot be read)."""
    from prometheus_client.parser import text_string_to_metric_families

    from cli.exits import ExitCode
    from cli.main import CommandError

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except (OSError, ValueError) as err:  # URLError is an OSError
        reason = getattr(err, "reason", err)
        raise CommandError(f"cannot read metrics from {url}: {reason}", ExitCode.SERVICE) from None
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _select(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    wanted = set(labels.items())
    return {key: v for (n, key), v in samples.items() if n == name and wanted <= key}


def _by(samples: Samples, name: str, label: str, **fixed: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for key, value in _select(samples, name, **fixed).items():
        totals[dict(key).get(label, "")] += value
    return dict(totals)


def _quantile(q: float, before: Samples, after: Samples, name: str, **labels: str) -> float | None:
    """histogram_quantile over the interval: linear interpolation inside the bucket, as PromQL."""
    now, then = _by(after, name, "le", **labels), _by(before, name, "le", **labels)
    buckets = sorted((float(le), now[le] - then.get(le, 0.0)) for le in now)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return None


def table(before: Samples, after: Samples, seconds: float) -> str:
    """The figures as text lines; rates over the `seconds` between the two scrapes."""

    def rate(name: str, label: str, **fixed: str) -> dict[str, float]:
        then = _by(before, name, label, **fixed)
        return {
            k: (v - then.get(k, 0.0)) / seconds for k, v in _by(after, name, label, **fixed).items()
        }

    total = _by(after, "digits_requests_total", "code")
    by_method = rate("digits_requests_total", "method")
    errors = {c: r for c, r in rate("digits_requests_total", "code").items() if c != "OK" and r > 0}
    p50, p99 = (
        _quantile(q, before, after, "digits_request_latency_seconds_bucket", method="Predict")
        for q in (0.5, 0.99)
    )
    version = _by(after, "digits_model_version", "").get("", 0.0)
    lines = [
        f"digits monitor  {time.strftime('%H:%M:%S')}  default version v{int(version)}"
        + ("  (NO MODEL LOADED)" if version == 0 else ""),
        f"requests        {sum(by_method.values()):9.1f}/s   "
        + "  ".join(f"{m} {r:.1f}/s" for m, r in sorted(by_method.items()))
        + f"   total {int(sum(total.values()))}",
        f"Predict latency p50 {_ms(p50)}  p99 {_ms(p99)}",
        "errors          "
        + ("  ".join(f"{c} {r:.2f}/s" for c, r in sorted(errors.items())) or "none")
        + "   total "
        + "  ".join(f"{c} {int(n)}" for c, n in sorted(total.items()) if c != "OK"),
    ]
    log = _by(after, "digits_prediction_log_records_total", "outcome")
    if log:
        lines.append(
            "prediction log  " + "  ".join(f"{o} {int(n)}" for o, n in sorted(log.items()))
        )
    lines += ["", _HEADER]
    images = rate("digits_predicted_class_total", "version")
    versions = set(images) | set(_by(after, "digits_model_test_accuracy", "version"))
    for v in sorted(versions, key=lambda s: int(s) if s.isdigit() else 0):
        lines.append(_version_row(v, images.get(v, 0.0), before, after))
    return "\n".join(lines)


_HEADER = (
    f"{'version':>7} {'images/s':>9} {'confidence':>10} {'max PSI':>8} {'(statistic)':<12} "
    f"{'window':>7} {'live acc':>8} {'labels':>7} {'test acc':>8}"
)


def _version_row(v: str, images_per_s: float, before: Samples, after: Samples) -> str:
    psi = _by(after, "digits_drift_psi", "statistic", version=v)
    worst = max(psi.items(), key=lambda item: item[1]) if psi else None
    count = _by(after, "digits_confidence_count", "version").get(v, 0.0)
    mean = _by(after, "digits_confidence_sum", "version").get(v, 0.0) / count if count else None
    labels = sum(_by(after, "digits_feedback_total", "outcome", version=v).values())
    live = _by(after, "digits_live_accuracy", "version").get(v)
    test = _by(after, "digits_model_test_accuracy", "version").get(v)
    window = _by(after, "digits_drift_window_images", "version").get(v)
    flag = " DRIFT" if worst and worst[1] > DRIFT_ALERT_PSI else ""
    statistic = f"({worst[0]})" if worst else ""
    return (
        f"{'v' + v:>7} {images_per_s:9.1f} {_num(mean, 10, '.4f')} "
        f"{_num(worst[1] if worst else None, 8, '.3f')} {statistic:<12} "
        f"{_num(window, 7, '.0f')} {_num(live, 8, '.4f')} {int(labels):>7} {_num(test, 8, '.4f')}"
        f"{flag}"
    )


def _num(value: float | None, width: int, spec: str) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f} ms"


def run(args: argparse.Namespace) -> int:
    from cli.exits import ExitCode
    from cli.main import CommandError

    if args.interval <= 0:
        raise CommandError("--interval must be > 0", exit_code=ExitCode.USAGE)
    before, then = scrape(args.metrics), time.monotonic()
    while True:
        time.sleep(args.interval)
        after, now = scrape(args.metrics), time.monotonic()
        text = table(before, after, now - then)
        if args.once:
            print(text)
            return 0
        sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")  # home + clear: redraw in place
        sys.stdout.flush()
        before, then = after, now
