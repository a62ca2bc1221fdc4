"""Training-curve and confusion-matrix PNGs, drawn off-screen (Agg) and thread-safe (no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_confusion_matrix", "plot_training_curves"]


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)  # attach the off-screen canvas; pyplot's global state is never used
    figure.savefig(path, dpi=100)
    return path


def plot_training_curves(history: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Loss (left) and accuracy (right) per epoch, with validation curves when present."""
    # Fixed margins: matplotlib's constrained layout doubles the drawing time.
    figure = Figure(figsize=(9, 3.5))
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.9, wspace=0.22)
    loss_axes, acc_axes = figure.subplots(1, 2)
    epochs = list(range(1, len(history) + 1))
    for axes, metric in ((loss_axes, "loss"), (acc_axes, "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            values = [epoch.get(prefix + metric) for epoch in history]
            if values and all(v is not None for v in values):
                axes.plot(epochs, values, style, markersize=3, label=(prefix or "train_") + metric)
        axes.set_xlabel("epoch")
        axes.set_title(metric)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
    return _save(figure, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], path: Path) -> Path:
    """Counts as a heat map: row = true digit, column = predicted digit."""
    figure = Figure(figsize=(5.5, 5))
    figure.subplots_adjust(left=0.1, right=0.98, bottom=0.1, top=0.93)
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    n_classes = len(matrix)
    peak = max((max(row) for row in matrix), default=0)
    for true in range(n_classes):
        for predicted in range(n_classes):
            count = matrix[true][predicted]
            colour = "white" if count > peak / 2 else "black"
            axes.text(
                predicted, true, str(count), ha="center", va="center", fontsize=7, color=colour
            )
    axes.set_xticks(range(n_classes))
    axes.set_yticks(range(n_classes))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("confusion matrix (test set)")
    return _save(figure, path)
