"""Turning benchmark rows into the markdown appended to BENCHMARKS.md and a quality-vs-fit-time plot."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Row = dict[str, Any]


def truth_error(row: Row, side: str = "synthetic") -> float:
    """Mean absolute distance of `side`'s statistics from the planted values."""
    errors = [abs(t[side] - t["planted"]) for t in row.get("truths", []) if t[side] == t[side]]
    return sum(errors) / len(errors) if errors else float("nan")


def dataset_table(rows: Sequence[Row]) -> str:
    """One dataset's markdown table: each system's cost, fidelity, privacy, utility and truth error, or its failure.

    The references' rows (ceiling and floor) have no fit; the ceiling has no privacy or utility figures ("–").
    `auto`'s row names the generator it chose (`auto → cart`).
    """
    head = (
        "| system | fit s | sample s | peak RSS MB | quality | C2ST AUC [95% CI] | shapes | pairs | diagnostic "
        "| DCR share | exact copies | utility real → synth | truth error |\n" + "|---" * 13 + "|\n"
    )
    lines = []
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['system']} | {row['status']}: {row.get('error', '')} |" + " |" * 11)
            continue
        utility = f"{row['utility_real']:.3f} → {row['utility_synthetic']:.3f}" if "utility_real" in row else "–"
        low, high = row.get("c2st_auc_ci", (math.nan, math.nan))
        c2st = f"{_num(row.get('c2st_auc', math.nan))} [{_num(low)}, {_num(high)}]" if "c2st_auc" in row else "–"
        copies = row.get("exact_match_rate", math.nan)
        system = f"{row['system']} → {row['chosen']}" if row.get("chosen") else row["system"]
        lines.append(
            f"| {system} | {row['fit_s']:.1f} | {row['sample_s']:.2f} | {row['peak_rss_mb']:.0f} "
            f"| {row['quality']:.3f} | {c2st} | {row['column_shapes']:.3f} | {_num(row['column_pair_trends'])} "
            f"| {row['diagnostic']:.3f} | {_num(row.get('dcr_share', math.nan))} "
            f"| {'–' if copies != copies else f'{copies:.4f}'} | {utility} | {_num(truth_error(row))} |"
        )
    return head + "\n".join(lines) + "\n"


def ratio_table(results: Sequence[Row]) -> str:
    """Each of our systems against each peer on the same dataset: fit-time ratio and quality difference."""
    ok = [r for r in results if r["status"] == "ok"]
    peers = sorted({r["system"] for r in ok if r["family"] == "sdv"})
    if not peers:
        return "_No peer ran in this run, so there are no ratios._\n"
    head = "| dataset | system | " + " | ".join(f"fit × vs {p} | Δquality vs {p}" for p in peers) + " |\n"
    head += "|---|---|" + "---|---|" * len(peers) + "\n"
    lines = []
    for row in (r for r in ok if r["family"] == "synthgate"):
        cells = []
        for peer in peers:
            match = next((r for r in ok if r["system"] == peer and r["dataset"] == row["dataset"]), None)
            if match is None:
                cells += ["–", "–"]
            else:
                cells += [f"{row['fit_s'] / match['fit_s']:.2f}", f"{row['quality'] - match['quality']:+.3f}"]
        lines.append(f"| {row['dataset']} | {row['system']} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def append_markdown(
    path: Path,
    results: Sequence[Row],
    env: dict[str, Any],
    command: str,
    mode: str,
    results_path: Path,
    figure: Path | None,
) -> None:
    """Append a run's section to `path`: machine, command, method, per-dataset tables, peer ratios, extrapolations."""
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    base = path.parent
    parts = [
        f"\n## Benchmark run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({mode})\n",
        f"Machine: {env['cores']} cores, GPU: {env['gpu']}, Python {env['python']} ({env['machine']}). {versions}.\n",
        f"Command: `{command}`. Raw rows: `{_relative(results_path, base)}`"
        + (f"; plot: `{_relative(figure, base)}`" if figure else "")
        + ".\n",
        "Every system gets the same seeded 80/20 split and is scored by the same code: sdmetrics 0.32.0 "
        "QualityReport and DiagnosticReport against the training part, the gate's privacy metrics, "
        "HistGradientBoosting utility (trained on real or synthetic, tested on the real holdout), and the "
        "mean absolute error of the planted facts (`truth error`; the real training part's own error, its "
        "sampling noise, is given under each table). The C2ST AUC (`validation.c2st`: HistGradientBoosting "
        "telling the training part's rows from the system's, 5-fold, 0.5 = indistinguishable) uses as many "
        "rows a side as the holdout holds (at most 10,000) and the run's seed for every system. Two references "
        "frame it: `real-unseen` (the holdout's real rows: the ceiling) and `independent-columns` (each column "
        "resampled on its own from the training part: the floor).\n",
    ]
    settings = {r["system"]: r["params"] for r in results if r.get("params")}
    if settings:
        listed = "; ".join(f"{name} `{json.dumps(params, sort_keys=True)}`" for name, params in settings.items())
        parts.append(f"Settings other than the defaults (capped training budgets): {listed}.\n")
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        rows = [r for r in results if r["dataset"] == dataset]
        reference = next((r for r in rows if r["status"] == "ok"), None)
        noise = f"; truth error of the real training part: {_num(truth_error(reference, 'real'))}" if reference else ""
        shape = f"{rows[0]['rows']:,} rows" + (f" × {rows[0]['columns']} columns" if "columns" in rows[0] else "")
        parts.append(f"\n### {dataset} ({shape}{noise})\n\n{dataset_table(rows)}")
    parts.append(
        f"\n### Ours against the peers, same run (fit × < 1: faster; Δquality > 0: better)\n\n{ratio_table(results)}"
    )
    parts.extend(_extrapolations(results))
    with path.open("a") as handle:
        handle.write("".join(parts))


def _extrapolations(results: Sequence[Row]) -> list[str]:
    """For a peer run with capped epochs: its time per epoch and, marked as such, its default-length fit."""
    from benchmarks.systems import SDV_DEFAULT_EPOCHS

    notes = []
    for row in results:
        epochs = (row.get("params") or {}).get("epochs")
        if row["status"] == "ok" and epochs:
            per_epoch = row["fit_s"] / epochs
            notes.append(
                f"\n- {row['dataset']} / {row['system']}: ran {epochs} of its default {SDV_DEFAULT_EPOCHS} epochs, "
                f"{per_epoch:.1f} s per epoch; **extrapolated** (not measured) fit at {SDV_DEFAULT_EPOCHS} epochs: "
                f"{per_epoch * SDV_DEFAULT_EPOCHS:,.0f} s.\n"
            )
    return notes


def plot(results: Sequence[Row], path: Path) -> Path | None:
    """Quality against fit time (log scale) of the fitted systems, one colour per dataset; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (pip install -e '.[bench]'): no plot")
        return None
    ok = [r for r in results if r["status"] == "ok" and r["family"] != "reference"]  # references fit nothing
    figure, axes = plt.subplots(figsize=(9, 6))
    datasets = list(dict.fromkeys(r["dataset"] for r in ok))
    colours = plt.get_cmap("tab10")
    for index, dataset in enumerate(datasets):
        for row in (r for r in ok if r["dataset"] == dataset):
            ours = row["family"] == "synthgate"
            axes.scatter(
                max(row["fit_s"], 1e-2),
                row["quality"],
                color=colours(index),
                marker="o" if ours else "x",
                s=60 if ours else 80,
            )
            axes.annotate(
                row["system"],
                (max(row["fit_s"], 1e-2), row["quality"]),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
    for index, dataset in enumerate(datasets):
        axes.scatter([], [], color=colours(index), label=dataset)
    axes.set_xscale("log")
    axes.set_xlabel("fit time, seconds (log scale)")
    axes.set_ylabel("sdmetrics quality")
    axes.set_title("Quality against fit time (o: synthgate, x: SDV)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _num(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
