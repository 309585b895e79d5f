"""The serving benchmark's chart: per model, p50 latency bars with p99 whiskers for the model
in-process, the plain server and ``securetf serve`` under the runtime; one panel per API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: configuration key -> (legend, colour)
SERIES = {
    "native": ("in-process, no securetf", "#9e9e9e"),
    "plain": ("plain server (no TLS, no runtime)", "#5b8fd0"),
    "securetf": ("securetf serve under securetf run", "#d0662b"),
}


@dataclass(frozen=True)
class Panel:
    """One API: its models as (name, label), and (model, series) -> (p50 ms, p99 ms)."""

    models: Sequence[tuple[str, str]]
    values: Mapping[tuple[str, str], tuple[float, float]]


def draw(out: Path, panels: Mapping[str, Panel], title: str) -> None:
    """One panel per API, one group of bars per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 4.2 * len(panels)), squeeze=False)
    width = 0.26
    for ax, (api, panel) in zip(axes[:, 0], panels.items(), strict=True):
        models, values = panel.models, panel.values
        for j, (series, (legend, colour)) in enumerate(SERIES.items()):
            xs, p50s, up = [], [], []
            for i, (name, _label) in enumerate(models):
                if (name, series) not in values:
                    continue
                p50, p99 = values[(name, series)]
                xs.append(i + (j - 1) * width)
                p50s.append(p50)
                up.append(max(p99 - p50, 0.0))
            ax.bar(xs, p50s, width, color=colour, label=legend)
            ax.errorbar(xs, p50s, yerr=[[0.0] * len(up), up], fmt="none", ecolor="black", capsize=3)
        for i, (name, _label) in enumerate(models):
            if (name, "plain") in values and (name, "securetf") in values:
                ratio = values[(name, "securetf")][0] / values[(name, "plain")][0]
                top = max(values[(name, s)][1] for s in SERIES if (name, s) in values)
                ax.annotate(
                    f"{(ratio - 1) * 100:+.1f}% at p50",
                    (i + width, top),
                    textcoords="offset points",
                    xytext=(0, 4),
                    ha="center",
                    fontsize=8,
                )
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels([label for _n, label in models], fontsize=8)
        ax.set_ylabel("latency, ms (bar p50, whisker p99)")
        ax.set_title(api, fontsize=10)
        ax.margins(y=0.12)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
