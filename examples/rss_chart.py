"""The main job's picture: RSS over time per example, one line per variant,
each phase's end marked on its line (matplotlib, written as a PNG).

Every line ends at the child's own reading when its job was over (after the
last scope's exit; a Pool after close()), marked with a square and labelled
with "held" (MiB above the process before the job, the dotted level) so the
line end, the table and summary.json say the same thing.

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
        end_labels = []
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
            # the end of the job: the last point of the line (the child's own reading)
            t_end, kib_end = trace[-1]
            ax.plot([t_end], [kib_end / 1024], "s", ms=4.5, color=color, mec="black", mew=0.5)
            if variant == "objarena.Pool" and "t_pool_open_end" in run:
                ax.annotate("close", (t_end, kib_end / 1024), textcoords="offset points", xytext=(3, 6),
                            fontsize=6, color=color)
            held = (run["rss_end_kib"] - run["before_job_kib"]) / 1024
            end_labels.append((kib_end / 1024, f"{held:+.1f}", color))
        # the process before the job (the baseline of "held"): the lowest variant's, nearly the same for all
        before = [r["before_job_kib"] / 1024 for r in runs[name].values()]
        ax.axhline(min(before), color="#777777", lw=0.8, ls=":")
        ax.text(0.0, min(before), " before the job", fontsize=6, color="#555555", va="bottom",
                transform=ax.get_yaxis_transform())
        # held figures at the right edge, spread so that they do not overlap
        xmax = max(tr[-1][0] for tr in samples[name].values() if tr)
        ax.set_xlim(right=xmax * 1.16)
        lo, hi = ax.get_ylim()
        gap = (hi - lo) * 0.055
        placed = []
        for y, text, color in sorted(end_labels):
            placed.append([y if not placed or y - placed[-1][0] >= gap else placed[-1][0] + gap, text, color])
        over = placed[-1][0] - (hi - gap / 2) if placed else 0
        for y, text, color in placed:
            ax.text(xmax * 1.02, y - max(over, 0), text, fontsize=6.5, color=color, va="center")
        ax.axvline(0, color="#999999", lw=0.8, ls="--")
        absent = meta.get("not_applying", {}).get(name, {})
        if absent:  # a variant with no line because it does not apply here (the tables show "—")
            ax.text(0.01, 0.98, "\n".join(f"{v}: does not apply" for v in absent), transform=ax.transAxes,
                    fontsize=6, color="#555555", va="top")
        ax.set_title(f"{name} ({len(next(iter(runs[name].values()))['phases'])} phases)", fontsize=10)
        ax.set_xlabel("seconds from the first phase (before 0: the input is made)", fontsize=8)
        ax.set_ylabel("RSS, MiB", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    legend = {}  # every variant drawn in any panel (not every example runs every variant)
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, h)
    labels = sorted(legend, key=lambda v: list(COLORS).index(v) if v in COLORS else len(COLORS))
    handles = [legend[v] for v in labels]
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(f"objarena examples: RSS of each run's process (dots: phase ends; squares: the job is over, "
                 f"pool closed; right: MiB held above the process before the job) - Python {meta['python']}, "
                 f"{meta['date'][:10]}", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
