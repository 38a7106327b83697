"""The main job's picture: RSS over time per example, one line per variant,
each phase's end marked on its line (matplotlib, written as a PNG).

    draw(path, samples, runs, meta)

samples[example][variant] = [(seconds from the baseline, RSS KiB), ...];
runs[example][variant] is the child's JSON (t_base, baseline_kib, phases[t0, t1]).
"""
import math

COLORS = {"pymalloc": "#444444", "objarena.scope": "#1f77b4", "objarena.run": "#2ca02c",
          "objarena.Pool": "#17becf", "glibc": "#d62728", "jemalloc": "#ff7f0e", "mimalloc": "#9467bd"}


def draw(path, samples, runs, meta):
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    names = list(samples)
    cols = 2 if len(names) > 1 else 1
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for variant, trace in samples[name].items():
            if not trace:
                continue
            color = COLORS.get(variant)
            ax.plot([t for t, _ in trace], [kib / 1024 for _, kib in trace], lw=1.2, color=color, label=variant)
            run = runs[name][variant]
            ends = [p["t1"] - run["t_base"] for p in run["phases"]]
            # each phase's end on this variant's line: the RSS sample nearest in time
            ys = [min(trace, key=lambda s, e=e: abs(s[0] - e))[1] / 1024 for e in ends]
            ax.plot(ends, ys, "o", ms=2.5, color=color)
        ax.axvline(0, color="#999999", lw=0.8, ls="--")
        ax.set_title(f"{name} ({len(next(iter(runs[name].values()))['phases'])} phases)", fontsize=10)
        ax.set_xlabel("seconds from the first phase (input made before 0)", fontsize=8)
        ax.set_ylabel("RSS, MiB", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(f"objarena examples: RSS of each run's process (dots: phase ends) - Python {meta['python']}, "
                 f"{meta['date'][:10]}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
