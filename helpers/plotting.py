"""Small matplotlib helpers for the figures the course draws again and again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _axes(ax=None, figsize=(6, 4)):
    """Return ``ax``, or a new figure's axes of ``figsize`` when none is given."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _array(values) -> np.ndarray:
    """Return ``values`` (a list, array or tensor) as a float NumPy array on the CPU."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=float)


def plot_bars(labels: Sequence[str], values, title: str, xlabel: str = "token",
              ylabel: str = "probability", ax=None):
    """Draw a bar chart of ``values`` over string ``labels`` (e.g. next-token probabilities); return the axes."""
    ax = _axes(ax, figsize=(max(6, 0.55 * len(labels)), 4))
    ax.bar(range(len(labels)), _array(values), color="tab:blue")
    ax.set_xticks(range(len(labels)), [repr(s)[1:-1] for s in labels], rotation=60, ha="right")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax


def plot_heatmap(matrix, xlabels: Sequence[str], ylabels: Sequence[str], title: str,
                 xlabel: str = "", ylabel: str = "", ax=None, cmap: str = "viridis",
                 colorbar: bool = True, vmin=None, vmax=None, annotate: bool = False):
    """Draw ``matrix`` as a heatmap with token tick labels and a colour bar; return the axes."""
    data = _array(matrix)
    # Long tick labels (sentences, tokens) need room of their own beside the cells.
    label_room = 0.07 * max((len(str(s)) for s in ylabels), default=0)
    ax = _axes(ax, figsize=(max(4, 0.45 * len(xlabels) + 2 + label_room),
                            max(3, 0.4 * len(ylabels) + 1.5 + 0.05 * max((len(str(s)) for s in xlabels), default=0))))
    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(xlabels)), [repr(s)[1:-1] for s in xlabels], rotation=60, ha="right")
    ax.set_yticks(range(len(ylabels)), [repr(s)[1:-1] for s in ylabels])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if annotate:
        for (i, j), value in np.ndenumerate(data):
            red, green, blue, _ = image.cmap(image.norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # perceived brightness of the cell
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w" if dark else "k")
    if colorbar:
        ax.figure.colorbar(image, ax=ax)
    return ax


def plot_attention(weights, tokens: Sequence[str], title: str, ax=None, colorbar: bool = True):
    """Draw one head's attention matrix (queries down, keys across); return the axes."""
    return plot_heatmap(weights, tokens, tokens, title, xlabel="key (attended to)",
                        ylabel="query (attending)", ax=ax, colorbar=colorbar, vmin=0.0, vmax=1.0)


def plot_curves(curves: Mapping[str, Sequence[float]], title: str, xlabel: str = "step",
                ylabel: str = "loss", ax=None, x: Mapping[str, Sequence[float]] | None = None):
    """Draw one line per named curve (e.g. train and validation loss); return the axes."""
    ax = _axes(ax)
    for name, values in curves.items():
        xs = (x or {}).get(name, range(1, len(values) + 1))
        ax.plot(list(xs), _array(values), marker="o" if len(values) < 30 else None, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
