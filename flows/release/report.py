"""The release report: one self-contained HTML page a data steward reads and signs off on.

Verdict first, then the scores behind it (figures, gate checks, expectations, utility, privacy, per
column), then the facts to trace it (timings, schema, generator, source, versions). The page has no
scripts and loads nothing from anywhere: figures are embedded as `data:` URIs, and the only link is a
relative one to the Data Docs written beside it, so it opens offline and can be archived next to the
data. Each section is a small function returning an HTML fragment ("" when it has nothing to show);
every value from the manifest is escaped.
"""

from __future__ import annotations

import base64
import html
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from flows.gate import Check, Verdict, in_words
from flows.release.manifest import Drift, FidelityMetrics, Manifest, Metrics, Split, UtilityMetrics, number, shown

logger = logging.getLogger(__name__)

# (label, where it is in the metrics, how to read it)
_SCORES: tuple[tuple[str, Callable[[Metrics], Any], str], ...] = (
    ("Quality", lambda m: m.fidelity.quality, "overall fidelity; higher is better"),
    ("Column shapes", lambda m: m.fidelity.column_shapes, "per-column distributions; higher is better"),
    ("Column pair trends", lambda m: m.fidelity.column_pair_trends, "correlations between columns; higher is better"),
    ("DCR share", lambda m: m.privacy.dcr_share,
     "rows closer to training than to holdout; about 50% is ideal"),
    ("Exact-copy rate", lambda m: m.privacy.exact_match_rate,
     "rows copied from the real table; lower is better"),
)

# Gate-check groups by name prefix, in the order the page shows them; other prefixes follow under "Other".
_CHECK_GROUPS = (("fidelity", "Fidelity"), ("expectations", "Expectations"), ("utility", "Utility"),
                 ("privacy", "Privacy"))

_PRIVACY_LABELS = {
    "pii_leaks": "Real PII values found in the synthetic table (cells)",
    "dcr_share": "Synthetic rows nearer to training than to unseen rows (share; about 0.5 is ideal)",
    "dcr_p_value": "p-value of the DCR share against 0.5",
    "exact_match_rate": "Synthetic rows that copy a training row exactly (rate)",
    "holdout_exact_match_rate": "Unseen real rows that copy a training row exactly (baseline rate)",
    "elapsed_s": "Time to compute the distances (s)",
    "inference_column": "Column the attribute-inference attack guesses",
}
_ATTACKS = {"singling_out": "Singling-out attack", "linkability": "Linkability attack",
            "inference": "Attribute-inference attack"}
_ATTACK_FIGURES = {"risk": "risk", "attack_rate": "success rate", "control_rate": "success rate on control rows"}

LARGE_COLUMN_DRIFT = 0.1
"""A source column whose distance since the previous release reaches this is large drift.

A display threshold, not a gate: it moves the drift section to the top of the report, with a warning.
"""
LARGE_ROW_CHANGE = 0.1
"""Rows added plus removed, as a share of the previous release's source rows, that make large drift.

A display threshold, not a gate, like `LARGE_COLUMN_DRIFT`.
"""

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --ok: #1a7f37; --ok-bg: #dafbe1;
  --bad: #cf222e; --bad-bg: #ffebe9; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
  font: 15px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px; }
header h1 { margin: 0; font-size: 1.5rem; }
header p { margin: 4px 0 0; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
h2 { font-size: 1.1rem; margin: 0 0 12px; }
h3 { font-size: 0.95rem; margin: 16px 0 6px; }
figure { margin: 0 0 16px; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 4px; text-align: center; }
tr.failed td { background: var(--bad-bg); }
a { color: var(--accent); }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
.verdict { border-width: 2px; }
.verdict.pass { background: var(--ok-bg); border-color: var(--ok); }
.verdict.fail { background: var(--bad-bg); border-color: var(--bad); }
.verdict .word { font-size: 2.2rem; font-weight: 800; letter-spacing: 0.06em; margin: 0; }
.verdict.pass .word { color: var(--ok); }
.verdict.fail .word { color: var(--bad); }
.verdict ul { margin: 8px 0 0; padding-left: 20px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card .name { color: var(--muted); font-size: 0.85rem; }
.card .value { font-size: 1.6rem; font-weight: 700; }
.card .hint { color: var(--muted); font-size: 0.78rem; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 0.85rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
table.checks { table-layout: fixed; }
table.checks th:nth-child(2), table.checks th:nth-child(3) { width: 8em; text-align: right; }
table.checks th:nth-child(4) { width: 6em; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.8rem; font-weight: 700; }
.badge.pass { background: var(--ok-bg); color: var(--ok); }
.badge.fail { background: var(--bad-bg); color: var(--bad); }
.bar { background: var(--bg); border-radius: 3px; height: 12px; min-width: 160px; }
.bar span { display: block; height: 100%; border-radius: 3px; background: var(--accent); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 16px; }
.muted { color: var(--muted); }
.drift.large { border-width: 2px; border-color: var(--bad); }
.warning { background: var(--bad-bg); color: var(--bad); padding: 8px 12px; border-radius: 6px; }
@media print { body { background: #fff; } section { break-inside: avoid; } }
"""


def render_report(manifest: Manifest, *, details: Mapping[str, Any] | None = None) -> str:
    """The whole page for a published or refused run.

    `details` (each key optional) adds what the manifest does not hold: `figures` (title → PNG bytes),
    `expectations` (list of {name, success, observed}), `expectations_docs` (relative link to the Data
    Docs), `column_shapes` and `pair_trends` (column or "a|b" pair → score), `c2st` ({rows, importance:
    column → AUC lost, worst_pairs: [a, b, AUC]}) and `marginals` (`MarginalDistance` as a dict).
    """
    metrics = manifest.metrics
    details = details or {}
    drift = manifest.drift
    large = drift is not None and large_drift(drift, manifest.split)
    sections = [
        _header(manifest),
        _drift(drift, large) if large else "",
        _verdict(manifest.gate, refusal_advice(manifest)),
        _scores(metrics),
        _distinguishability(metrics.fidelity, details),
        _figures(details.get("figures")),
        _gate_checks(manifest.gate),
        _expectations(details.get("expectations"), details.get("expectations_docs")),
        _utility(metrics.utility),
        _privacy(metrics.privacy.figures),
        "" if large else _drift(drift, large),
        _per_column(details),
        _timings(manifest.timings),
        _schema(manifest.schema),
        _provenance(manifest),
    ]
    title = f"synthgate · {manifest.dataset} · {manifest.name}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(s for s in sections if s)
        + "\n</main>\n</body>\n</html>\n"
    )


def _header(manifest: Manifest) -> str:
    return (
        f"<header><h1>Synthetic release report: {_e(manifest.dataset)}</h1>"
        f"<p>Run <code>{_e(manifest.name)}</code> · created {_e(manifest.created_at or 'unknown')}</p>"
        "</header>"
    )


def refusal_advice(manifest: Manifest) -> str:
    """What to try after a run's refusal: one sentence from the families of the failed checks.

    A leak, the graver finding, comes first. "" when the gate passed or the manifest is not a run's (`synthgate
    evaluate` judges a table synthgate did not make). `auto` is not suggested again to a run that used it.
    """
    failed = [check.name for check in manifest.gate.failed]
    if not failed or manifest.generator is None:
        return ""
    used_auto = bool(manifest.generator.selection)
    if any(name.startswith("privacy.") and name != "privacy.budget" for name in failed):
        auto = "" if used_auto else ("`--generator auto` (chooses a generator that does not overfit on a validation "
                                     "split) or ")
        return f"Try {auto}more rows, or a differentially private generator (params dp_epsilon)."
    if "privacy.budget" in failed:
        return "The dataset's privacy budget would be exceeded: raise `privacy_budget` or spend a smaller dp_epsilon."
    return f"Try {'' if used_auto else '`--generator auto` or '}a stronger generator such as ddpm."


def _verdict(gate: Verdict, advice: str = "") -> str:
    """The decision in one word, and for a refusal the failed checks in words and what to try."""
    if gate.passed:
        return (
            '<section class="verdict pass"><p class="word">PUBLISHED</p>'
            "<p>Every gate check passed; this synthetic release may be shared.</p></section>"
        )
    failed = gate.failed
    reasons = "".join(
        f"<li><strong>{_e(c.title)}</strong> was {_e(shown(c.value))} (must be {_e(_rule(c))})</li>" for c in failed
    )
    because = (
        f"{len(failed)} gate check{'s' if len(failed) != 1 else ''} failed:" if failed else "The gate did not pass."
    )
    return (
        '<section class="verdict fail"><p class="word">REFUSED</p>'
        f"<p>No synthetic data was released. {_e(because)}</p>"
        f"{f'<ul>{reasons}</ul>' if reasons else ''}"
        f"{f'<p>{_code_spans(advice)}</p>' if advice else ''}</section>"
    )


def _code_spans(text: str) -> str:
    """`text` escaped, with its `backquoted` parts as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _scores(metrics: Metrics) -> str:
    cards = "".join(_card(label, _percent(score(metrics)), hint) for label, score, hint in _SCORES)
    return f'<section><h2>Scores</h2><div class="cards">{cards}</div></section>'


def _distinguishability(fidelity: FidelityMetrics, details: Mapping[str, Any]) -> str:
    """Whether a classifier tells the synthetic rows from the training rows, and how far the 3-way marginals are.

    The classifier's ROC AUC with its interval, the columns and pairs that give the synthetic rows away, and the
    3-way marginals' distance against real unseen rows'. The saturated averages above cannot separate a fair
    generator from a poor one; these can. Shown, not gated.
    """
    auc, distance = number(fidelity.c2st_auc), number(fidelity.marginal_tv_3way)
    if auc is None and distance is None:
        return ""
    c2st, marginals = _mapping(details.get("c2st")), _mapping(details.get("marginals"))
    low, high, ratio = (number(value) for value in (fidelity.c2st_auc_low, fidelity.c2st_auc_high,
                                                      fidelity.marginal_tv_ratio))
    rows = number(c2st.get("rows"))
    cards = (
        _card("Classifier ROC AUC", _decimals(auc),
              f"95% interval {_decimals(low)} to {_decimals(high)}; 0.5: indistinguishable, 1.0: trivially told apart")
        + _card("3-way marginal distance", _decimals(distance),
                f"{_decimals(ratio, 2)} × real unseen rows' (1.0: as close as fresh real rows)" if ratio is not None
                else "total variation; no real unseen rows to compare with")
    )
    told = (f"A gradient-boosted classifier trained to tell {rows:,.0f} synthetic rows from as many training rows "
            if rows is not None else "A gradient-boosted classifier trained to tell synthetic from training rows ")
    note = (told + f"reaches a cross-validated ROC AUC of {_decimals(auc)}: 0.5 means it cannot tell them apart "
            "(real rows never trained on score about 0.5), 1.0 that every synthetic row is told apart. Well below 0.5, "
            "the synthetic rows repeat training rows. Reported only: no gate check reads these yet.")
    importance = c2st.get("importance")
    pairs = {f"{pair[0]} × {pair[1]}": pair[2] for pair in c2st.get("worst_pairs") or []
             if isinstance(pair, list | tuple) and len(pair) == 3}
    tables = ([_bar_table("Columns that give them away (AUC lost when shuffled; bars out of 0.5)", importance,
                          highest_first=True, scale=0.5)] if isinstance(importance, Mapping) and importance else [])
    tables += [_bar_table("Most distinguishable pairs (AUC of a classifier on the pair alone)", pairs,
                          highest_first=True)] if pairs else []
    grid = f"<div class='grid2'>{''.join(tables)}</div>" if tables else ""
    return (
        f"<section><h2>Can a classifier tell synthetic from real rows?</h2><div class='cards'>{cards}</div>"
        f"<p>{_e(note)}</p><p class='muted'>{_e(_marginal_note(marginals))}</p>{grid}</section>"
    )


def _marginal_note(marginals: Mapping[str, Any]) -> str:
    """How the marginal distance was taken: over how many column sets of which order, on how many rows."""
    order, sets, of, rows = (int(number(marginals.get(key)) or 0) for key in ("order", "sets", "of", "rows"))
    if not (order and sets and rows):
        return "Mean total variation distance of the real and synthetic 3-way marginals."
    words = {3: "column triples", 2: "column pairs (fewer than 3 learned columns)"}.get(order, "columns (one learned)")
    fresh = number(marginals.get("holdout_distance"))
    return (f"Mean total variation distance of the real and synthetic {order}-way marginals over {sets:,} of {of:,} "
            f"{words}, on {rows:,} synthetic rows" + (f"; as many real unseen rows: {_decimals(fresh)}."
                                                    if fresh is not None else "."))


def _card(name: str, value: str, hint: str) -> str:
    return (f'<div class="card"><div class="name">{_e(name)}</div><div class="value">{_e(value)}</div>'
            f'<div class="hint">{_e(hint)}</div></div>')


def _mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a mapping, else an empty one: a malformed manifest section reads as a missing one."""
    return value if isinstance(value, Mapping) else {}


def _decimals(value: float | None, places: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{places}f}"


def _figures(figures: Any) -> str:
    """Each figure (title → PNG bytes) embedded as a data URI; anything that is not a PNG is left out."""
    if not isinstance(figures, Mapping):
        return ""
    shown = []
    for title, png in figures.items():
        if not isinstance(png, bytes) or not png.startswith(_PNG_MAGIC):
            logger.warning("report: figure %r is not PNG bytes; left out", title)
            continue
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        shown.append(f'<figure><img src="{uri}" alt="{_e(title)}"><figcaption>{_e(title)}</figcaption></figure>')
    return f"<section><h2>Figures</h2>{''.join(shown)}</section>" if shown else ""


def _gate_checks(gate: Verdict) -> str:
    """Every check with its value and rule, one table per family (fidelity, expectations, utility, privacy)."""
    if not gate.checks:
        return ""
    groups: dict[str, list[Check]] = {title: [] for _, title in _CHECK_GROUPS}
    prefixes = dict(_CHECK_GROUPS)
    for check in gate.checks:
        groups.setdefault(prefixes.get(check.name.split(".")[0], "Other"), []).append(check)
    tables = "".join(
        f"<h3>{_e(title)}</h3>"
        f"{_table(('Check', 'Value', 'Rule', 'Result'), ''.join(map(_check_row, group)), 'checks')}"
        for title, group in groups.items()
        if group
    )
    return f"<section><h2>Gate checks</h2>{tables}</section>"


def _check_row(check: Check) -> str:
    words = "" if check.title == check.name else f"{_e(check.title)} "
    return (
        f"{_tr(check.passed)}<td>{words}<code class='muted'>{_e(check.name)}</code></td>"
        f"<td class='num'>{_e(shown(check.value))}</td><td class='num'>{_e(_rule(check))}</td>"
        f"<td>{_badge(check.passed)}</td></tr>"
    )


def _rule(check: Check) -> str:
    """How the check was decided (`upper 99.9% bound ≤ 0.55`, `≥ 0.75, or within noise (p ≥ 0.001)`).

    With its interval or p-value when it has one.
    """
    rule = check.rule
    if check.interval is not None:
        rule += f"; interval [{shown(check.interval[0])}, {shown(check.interval[1])}]"
    if check.p_value is not None:
        rule += f"; p = {shown(check.p_value)}"
    return rule


def _expectations(outcomes: Any, docs: Any) -> str:
    """The Great Expectations suite's outcomes, failed first, with a link to the Data Docs beside the report."""
    if not isinstance(outcomes, list | tuple) or not outcomes:
        return ""
    items = [o for o in outcomes if isinstance(o, Mapping)]
    ordered = sorted(items, key=lambda o: bool(o.get("success")))
    failed = sum(not o.get("success") for o in items)
    rows = "".join(
        f"{_tr(bool(o.get('success')))}<td><code>{_e(o.get('name', '?'))}</code></td>"
        f"<td>{_e(shown(o.get('observed')))}</td><td>{_badge(bool(o.get('success')))}</td></tr>"
        for o in ordered
    )
    summary = f"{len(items) - failed} of {len(items)} expectations met."
    link = _relative_link(docs)
    more = f" <a href=\"{_e(link)}\">Full Data Docs</a>" if link else ""
    return (
        f"<section><h2>Expectations</h2><p class='muted'>{_e(summary)}{more}</p>"
        f"{_table(('Expectation', 'Observed', 'Result'), rows)}</section>"
    )


def _relative_link(target: Any) -> str | None:
    """A link only to a file beside the report: no scheme, no host, no absolute path, no way up."""
    if not isinstance(target, str) or not target:
        return None
    if re.match(r"^(?:[a-z][a-z0-9+.-]*:|/|\\)", target, flags=re.IGNORECASE) or ".." in target.split("/"):
        logger.warning("report: expectations docs link %r is not a relative path; left out", target)
        return None
    return target


def _utility(utility: UtilityMetrics | None) -> str:
    """Train-on-synthetic, test-on-real against train-on-real: how useful the release is for a model."""
    if utility is None or utility == UtilityMetrics():
        return (
            "<section><h2>Machine-learning utility</h2>"
            "<p class='muted'>No target column: utility was not measured.</p></section>"
        )
    kept = number(utility.lift_kept)
    items = {
        "Target column": utility.target,
        "Task": utility.task,
        "Metric": utility.metric,
        "Model trained on real rows": utility.real_score,
        "Model trained on synthetic rows": utility.synthetic_score,
        "Guessing (majority class or mean)": utility.baseline_score,
        "Share of the real model's lift kept": utility.lift_kept,
        "p-value: real model no better than guessing": utility.real_lift_p,
    }
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(shown(v))}</td></tr>" for k, v in items.items()
                   if v is not None)
    if kept is None:
        note = "The real model is no better than guessing here, so there is no utility to keep."
    else:
        note = (f"A model trained on the synthetic rows keeps {_percent(kept)} of what a model trained on the real "
                "rows gains over guessing (both tested on real rows never trained on).")
    return (
        f"<section><h2>Machine-learning utility</h2><p>{_e(note)}</p>"
        f"<table><tbody>{rows}</tbody></table></section>"
    )


def _privacy(privacy: Mapping[str, Any]) -> str:
    """Every privacy figure of the manifest, named in words."""
    if not privacy:
        return ""
    rows = "".join(
        f"<tr><td>{_e(_privacy_label(str(name)))} <code class='muted'>{_e(name)}</code></td>"
        f"<td class='num'>{_e(shown(value))}</td></tr>"
        for name, value in privacy.items()
    )
    return f"<section><h2>Privacy</h2>{_table(('Measure', 'Value'), rows)}</section>"


def _privacy_label(name: str) -> str:
    if name in _PRIVACY_LABELS:
        return _PRIVACY_LABELS[name]
    for attack, words in _ATTACKS.items():
        for figure, what in _ATTACK_FIGURES.items():
            if name == f"{attack}_{figure}":
                return f"{words}: {what}"
    return in_words(name)


def large_drift(drift: Drift, split: Split | None = None) -> bool:
    """Whether the source moved enough to be shown first: a column at `LARGE_COLUMN_DRIFT`, or many rows changed.

    Rows changed are measured against the previous source's rows, `added - removed` away from this run's
    (`split`: this run's train and holdout rows); without a split, only the columns are judged.
    """
    if drift.source and max(drift.source.values()) >= LARGE_COLUMN_DRIFT:
        return True
    if split is None or drift.source_rows_added is None or drift.source_rows_removed is None:
        return False
    changed = drift.source_rows_added + drift.source_rows_removed
    previous_rows = split.train_rows + split.holdout_rows - drift.source_rows_added + drift.source_rows_removed
    return changed >= LARGE_ROW_CHANGE * max(previous_rows, 1)


def _drift(drift: Drift | None, large: bool) -> str:
    """Distances since the previous release, worst first: the source's (when measured) and the synthetic rows'."""
    if drift is None:
        return ""
    warning = ("<p class='warning'><strong>Warning:</strong> the source changed markedly since the previous release"
               " (display threshold, not a gate): check the new data before using these rows.</p>" if large else "")
    rows = ("" if drift.source_rows_added is None else
            f"<p>Source rows added: <strong>{_e(shown(drift.source_rows_added))}</strong>, removed: "
            f"<strong>{_e(shown(drift.source_rows_removed))}</strong>.</p>")
    tables = [_bar_table(title, scores, highest_first=True)
              for title, scores in (("Source (total variation)", drift.source),
                                    ("Synthetic rows (total variation)", drift.synthetic)) if scores]
    private = "" if drift.source is not None else "<p class='muted'>No source side: it is not measured under " \
        "differential privacy, where it would spend privacy no budget paid for.</p>"
    return (f"<section class='drift{' large' if large else ''}'><h2>Drift since release {_e(drift.previous)}</h2>"
            f"{warning}{rows}{private}<div class='grid2'>{''.join(tables)}</div></section>")


def _per_column(details: Mapping[str, Any]) -> str:
    """Bar tables of the per-column shape and per-pair trend scores, worst first."""
    tables = [
        _bar_table(title, details[key])
        for key, title in (("column_shapes", "Column shapes"), ("pair_trends", "Column pair trends"))
        if isinstance(details.get(key), Mapping) and details[key]
    ]
    return f"<section><h2>Per column</h2><div class='grid2'>{''.join(tables)}</div></section>" if tables else ""


def _timings(timings: Mapping[str, Any]) -> str:
    """Seconds per step, with bars against the slowest."""
    seconds = {str(k): n for k, v in timings.items() if (n := number(v)) is not None}
    if not seconds:
        return ""
    scale = max([*seconds.values(), 1e-9])
    rows = "".join(
        f"<tr><td>{_e(in_words(name.removesuffix('_s')))}</td><td class='num'>{_e(shown(value))} s</td>"
        f"<td><div class='bar'><span style='width:{100 * max(value, 0.0) / scale:.1f}%'></span></div></td></tr>"
        for name, value in seconds.items()
    )
    return f"<section><h2>Timings</h2><table><tbody>{rows}</tbody></table></section>"


def _bar_table(title: str, scores: Mapping[str, Any], *, highest_first: bool = False, scale: float | None = None
               ) -> str:
    """Name, value and bar a row, worst first: lowest first for scores, highest first for blame (`highest_first`).

    Bars are out of `scale` (default 1.0, or the largest value when that is larger).
    """
    numbers = {col: number(v) for col, v in scores.items()}
    full = max([scale or 1.0, *(v for v in numbers.values() if v is not None)])
    sign = -1.0 if highest_first else 1.0
    ordered = sorted(numbers.items(), key=lambda item: (item[1] is None, sign * (item[1] or 0.0)))
    rows = "".join(
        f"<tr><td>{_e(col)}</td><td class='num'>{_e(shown(value))}</td>"
        f"<td><div class='bar'><span style='width:{100 * max(value or 0.0, 0.0) / full:.1f}%'></span></div></td></tr>"
        for col, value in ordered
    )
    return f"<div><h3>{_e(title)}</h3><table><tbody>{rows}</tbody></table></div>"


def _schema(schema: Mapping[str, Any] | None) -> str:
    """The ingested schema (`Schema.to_dict()`): what each column was taken to be."""
    if not schema or not isinstance(schema.get("columns"), Mapping):
        return ""
    columns: Mapping[str, Mapping[str, Any]] = schema["columns"]
    kinds: dict[str, int] = {}
    for spec in columns.values():
        kinds[str(spec.get("kind"))] = kinds.get(str(spec.get("kind")), 0) + 1
    summary = f"{len(columns)} columns: " + ", ".join(f"{n} {k}" for k, n in kinds.items())
    if schema.get("target"):
        summary += f"; target column {schema['target']}"
    rows = "".join(
        f"<tr><td class='nowrap'><code>{_e(name)}</code></td><td>{_e(spec.get('kind', ''))}</td>"
        f"<td class='nowrap'><code>{_e(spec.get('dtype', ''))}</code></td>"
        f"<td>{'yes' if spec.get('nullable') else 'no'}</td><td>{_e(_column_facts(spec))}</td></tr>"
        for name, spec in columns.items()
    )
    return (
        f"<section><h2>Schema</h2><p class='muted'>{_e(summary)}</p><table><thead><tr><th>Column</th><th>Kind</th>"
        f"<th>Type</th><th>Nullable</th><th>Facts</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _column_facts(spec: Mapping[str, Any]) -> str:
    """A column's facts in a few words: categories, bounds (datetimes as dates), zone, PII type."""
    facts = []
    if spec.get("categories") is not None:
        cats = [str(c) for c in spec["categories"]]
        listed = ", ".join(cats[:8]) + (", …" if len(cats) > 8 else "")
        facts.append(f"{len(cats)} categories: {listed}")
    if spec.get("bounds") is not None:
        low, high = spec["bounds"]
        if spec.get("kind") == "datetime":
            low, high = (datetime.fromtimestamp(float(b) / 1e9, UTC).isoformat(timespec="seconds") for b in (low, high))
        facts.append(f"range {shown(low)} … {shown(high)}")
    facts += [
        f"{key.replace('_', ' ')} {spec[key]}" for key in ("timezone", "datetime_format", "pii_type") if spec.get(key)
    ]
    if spec.get("integer"):
        facts.append("integer")
    return "; ".join(facts)


def _provenance(manifest: Manifest) -> str:
    """Where the release came from and what made it: enough to reproduce or audit it.

    Timings have their own section.
    """
    generator = manifest.generator.to_dict() if manifest.generator is not None else {}
    release = {
        "rows": manifest.rows,
        "files": len(manifest.files) or None,
        "release_id": manifest.release_id,
        "run_id": manifest.run_id,
    }
    tables = [
        _kv_table("Generator", {**{k: v for k, v in generator.items() if k != "params"},
                                **generator.get("params", {})}),
        _kv_table("Source", manifest.source.to_dict() if manifest.source is not None else {}),
        _kv_table("Release", release),
        _kv_table("Versions", manifest.versions),
    ]
    return f"<section><h2>Provenance</h2><div class='grid2'>{''.join(tables)}</div>{_files(manifest)}</section>"


def _files(manifest: Manifest) -> str:
    if not manifest.files:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(f.path)}</code></td><td class='num'>{_e(shown(f.rows))}</td>"
        f"<td><code>{_e(f.sha256)}</code></td></tr>"
        for f in manifest.files
    )
    return f"<h3>Files</h3>{_table(('Path', 'Rows', 'sha256'), rows)}"


def _table(headers: tuple[str, ...], rows: str, css_class: str = "") -> str:
    """A table from its header names and its already-rendered, already-escaped rows."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    opening = f"<table class='{css_class}'>" if css_class else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _kv_table(title: str, items: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(key)}</th><td><code>{_e(shown(value))}</code></td></tr>"
        for key, value in items.items()
        if value is not None
    )
    return f"<div><h3>{_e(title)}</h3><table><tbody>{rows}</tbody></table></div>" if rows else ""


def _tr(passed: bool) -> str:
    """A row's opening tag, tinted when it reports a failure."""
    return "<tr>" if passed else "<tr class='failed'>"


def _badge(passed: bool) -> str:
    return "<span class='badge pass'>PASS</span>" if passed else "<span class='badge fail'>FAIL</span>"


def _percent(value: Any) -> str:
    """Shares as percentages, with an extra decimal for small ones so 0.04% does not read as 0.0%."""
    share = number(value)
    if share is None:
        return "n/a"
    return f"{share:.2%}" if 0 < abs(share) < 0.1 else f"{share:.1%}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
