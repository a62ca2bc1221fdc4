"""The drift figure of docs/monitoring.md: PSI of live traffic, clean vs drifted, over time.

    MNIST_DIR=/path/to/mnist .venv/bin/python bench/drift_plot.py [--out docs/drift_psi.png]

Trains the MLP on MNIST (MNIST_DIR; synthetic look-alikes without it), publishes it with the
pipeline's manifest (training profile included), serves it in-process on 127.0.0.1 and sends
phases of test images through DigitsClient: clean, inverted, clean, shifted into a corner,
clean, rotated 90 degrees. After every request of 50 images it reads digits_drift_psi from the
server's /metrics exposition. Prints the per-phase maxima as JSON and saves the plot.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.helpers.digit_data import cornered, inverted, publish_trained, rotated  # noqa: E402
from tests.helpers.servers import start  # noqa: E402

WINDOW, REQUEST = 1000, 50
PHASES = (("clean", None), ("inverted", inverted), ("clean", None), ("cornered", cornered),
          ("clean", None), ("rotated 90°", rotated))  # fmt: skip


def psi_by_statistic(exposition: bytes) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            if sample.name == "digits_drift_psi":
                found[sample.labels["statistic"]] = sample.value
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "drift_psi.png")
    parser.add_argument("--per-phase", type=int, default=2000, help="images per phase (2000)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    work = Path(tempfile.mkdtemp(prefix="drift-plot-"))
    registry, images, _ = publish_trained(work)
    accuracy = registry.get("digits", 1).manifest["metrics"]["accuracy"]
    running = start(registry, drift_window=WINDOW, drift_fold_interval_s=0)
    sent, series, bounds = 0, [], []
    try:
        for phase, (name, transform) in enumerate(PHASES):
            offset = (phase * args.per_phase) % max(len(images) - args.per_phase, 1)
            batch = images[offset : offset + args.per_phase]
            batch = transform(batch) if transform else batch
            bounds.append((sent, name))
            for start_row in range(0, len(batch), REQUEST):
                running.client.predict(batch[start_row : start_row + REQUEST])
                sent += len(batch[start_row : start_row + REQUEST])
                psi = psi_by_statistic(running.server.core.metrics.exposition())
                if psi:
                    series.append((sent, psi))
    finally:
        running.close()
    statistics = sorted(series[-1][1])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for statistic in statistics:
        ax.plot([s for s, _ in series], [max(p[statistic], 1e-3) for _, p in series],
                label=statistic, linewidth=1.2)  # fmt: skip
    ax.axhline(0.2, color="red", linestyle="--", linewidth=1, label="alert threshold 0.2")
    for start_image, name in bounds:
        ax.axvline(start_image, color="grey", linewidth=0.6)
        ax.text(start_image + 60, 60, name, fontsize=9, va="top")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 100)
    ax.set_xlabel(f"images sent (requests of {REQUEST}); sliding window of {WINDOW} images")
    ax.set_ylabel("PSI vs training profile (log scale)")
    ax.set_title(f"digits drift score per statistic (MLP, test accuracy {accuracy:.4f})")
    ax.legend(ncol=3, fontsize=8, loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    summary = []
    for index, (start_image, name) in enumerate(bounds):
        end = bounds[index + 1][0] if index + 1 < len(bounds) else sent
        # The phase's end: the window then holds only this phase's images.
        last = [p for s, p in series if start_image + WINDOW <= s <= end]
        if last:
            summary.append({"phase": name, "images": end - start_image,
                            "max_psi_at_end": round(max(last[-1].values()), 3),
                            "statistic": max(last[-1], key=last[-1].get)})  # fmt: skip
    print(json.dumps({"test_accuracy": accuracy, "window": WINDOW, "phases": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
