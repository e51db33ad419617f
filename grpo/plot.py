"""Curves of a run's metrics.jsonl as one PNG (matplotlib), and several runs side by side."""
import json
import math

PANELS = [("reward", "reward"), ("accuracy", "train accuracy"), ("eval/pass@1", "held-out pass@1 (greedy)"),
          ("completion_len", "completion length"), ("entropy", "entropy"), ("clip_frac", "clip fraction"),
          ("kl", "KL to reference"), ("grad_norm", "grad norm")]


def read_metrics(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _smooth(ys, k):
    out, acc = [], []
    for y in ys:
        acc = (acc + [y])[-k:]
        out.append(sum(acc) / len(acc))
    return out


def plot_metrics(runs, out_png, smooth=10):
    """runs: a metrics.jsonl path or {label: path}. Panels with no data are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {"": runs} if isinstance(runs, str) else runs
    data = {label: read_metrics(p) for label, p in runs.items()}
    panels = [(k, t) for k, t in PANELS if any(r.get(k) for rows in data.values() for r in rows)]  # not all 0
    cols = min(4, len(panels))
    fig, axes = plt.subplots(math.ceil(len(panels) / cols), cols, figsize=(4 * cols, 3 * math.ceil(len(panels) / cols)),
                             squeeze=False)
    for ax, (key, title) in zip(axes.flat, panels):
        for label, rows in data.items():
            pts = [(r["step"], r[key]) for r in rows if key in r and r[key] == r[key]]
            if pts:
                xs, ys = zip(*pts)
                ys = ys if key.startswith("eval/") else _smooth(ys, smooth)
                ax.plot(xs, ys, marker="o" if key.startswith("eval/") else None, label=label or None)
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(data) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
