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
import json
import logging
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

# (label, path in manifest["metrics"], how to read it)
_SCORES: tuple[tuple[str, tuple[str, str], str], ...] = (
    ("Quality", ("fidelity", "quality"), "overall fidelity; higher is better"),
    ("Column shapes", ("fidelity", "column_shapes"), "per-column distributions; higher is better"),
    ("Column pair trends", ("fidelity", "column_pair_trends"), "correlations between columns; higher is better"),
    ("DCR share", ("privacy", "dcr_share"), "rows closer to training than to holdout; about 50% is ideal"),
    ("Exact-copy rate", ("privacy", "exact_match_rate"), "rows copied from the real table; lower is better"),
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
@media print { body { background: #fff; } section { break-inside: avoid; } }
"""


def render_report(manifest: Mapping[str, Any], *, details: Mapping[str, Any] | None = None) -> str:
    """The whole page for a published or refused run.

    `details` (each key optional) adds what the manifest does not hold: `figures` (title → PNG bytes),
    `expectations` (list of {name, success, observed}), `expectations_docs` (relative link to the Data
    Docs), `column_shapes` and `pair_trends` (column or "a|b" pair → score), `c2st` ({rows, importance:
    column → AUC lost, worst_pairs: [a, b, AUC]}) and `marginals` (`MarginalDistance` as a dict).
    """
    gate = manifest.get("gate") or {}
    metrics = manifest.get("metrics") or {}
    details = details or {}
    sections = [
        _header(manifest),
        _verdict(gate, refusal_advice(manifest)),
        _scores(metrics),
        _distinguishability(metrics, details),
        _figures(details.get("figures")),
        _gate_checks(gate),
        _expectations(details.get("expectations"), details.get("expectations_docs")),
        _utility(metrics.get("utility")),
        _privacy(metrics.get("privacy")),
        _per_column(details),
        _timings(manifest.get("timings")),
        _schema(manifest.get("schema")),
        _provenance(manifest),
    ]
    title = f"synthgate · {manifest.get('dataset', '')} · {_run_name(manifest)}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(s for s in sections if s)
        + "\n</main>\n</body>\n</html>\n"
    )


def _header(manifest: Mapping[str, Any]) -> str:
    return (
        f"<header><h1>Synthetic release report: {_e(manifest.get('dataset', ''))}</h1>"
        f"<p>Run <code>{_e(_run_name(manifest))}</code> · created {_e(manifest.get('created_at', 'unknown'))}</p>"
        "</header>"
    )


def refusal_advice(manifest: Mapping[str, Any]) -> str:
    """What to try after a run's refusal, one sentence from the families of the failed checks (a leak, the
    graver finding, first); "" when the gate passed or the manifest is not a run's (`synthgate evaluate`
    judges a table synthgate did not make). `auto` is not suggested again to a run that used it."""
    failed = [str(c.get("name", "")) for c in (manifest.get("gate") or {}).get("checks", []) if not c.get("passed")]
    generator = manifest.get("generator")
    if not failed or not isinstance(generator, Mapping):
        return ""
    used_auto = bool(generator.get("selection"))
    if any(name.startswith("privacy.") and name != "privacy.budget" for name in failed):
        auto = "" if used_auto else ("`--generator auto` (chooses a generator that does not overfit on a validation "
                                     "split) or ")
        return f"Try {auto}more rows, or a differentially private generator (params dp_epsilon)."
    if "privacy.budget" in failed:
        return "The dataset's privacy budget would be exceeded: raise `privacy_budget` or spend a smaller dp_epsilon."
    return f"Try {'' if used_auto else '`--generator auto` or '}a stronger generator such as ddpm."


def _verdict(gate: Mapping[str, Any], advice: str = "") -> str:
    """The decision in one word, and for a refusal the failed checks in words and what to try."""
    if gate.get("passed"):
        return (
            '<section class="verdict pass"><p class="word">PUBLISHED</p>'
            "<p>Every gate check passed; this synthetic release may be shared.</p></section>"
        )
    failed = [c for c in gate.get("checks", []) if not c.get("passed")]
    reasons = "".join(
        f"<li><strong>{_e(c.get('label') or _label(c.get('name', '?')))}</strong> was {_e(_fmt(c.get('value')))}"
        f" (must be {_e(_rule(c))})</li>"
        for c in failed
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


def _scores(metrics: Mapping[str, Any]) -> str:
    def score(group: str, key: str) -> Any:
        values = metrics.get(group)
        return values.get(key) if isinstance(values, Mapping) else None

    cards = "".join(_card(label, _percent(score(group, key)), hint) for label, (group, key), hint in _SCORES)
    return f'<section><h2>Scores</h2><div class="cards">{cards}</div></section>'


def _distinguishability(metrics: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    """Can a classifier tell the synthetic rows from the training rows (ROC AUC and its interval), which
    columns and pairs give them away, and how far the 3-way marginals are against real unseen rows'. The
    saturated averages above cannot separate a fair generator from a poor one; these can. Shown, not gated."""
    fidelity = _mapping(metrics.get("fidelity"))
    auc, distance = _number(fidelity.get("c2st_auc")), _number(fidelity.get("marginal_tv_3way"))
    if auc is None and distance is None:
        return ""
    c2st, marginals = _mapping(details.get("c2st")), _mapping(details.get("marginals"))
    low, high, ratio = (_number(fidelity.get(key)) for key in ("c2st_auc_low", "c2st_auc_high", "marginal_tv_ratio"))
    rows = _number(c2st.get("rows"))
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
    order, sets, of, rows = (int(_number(marginals.get(key)) or 0) for key in ("order", "sets", "of", "rows"))
    if not (order and sets and rows):
        return "Mean total variation distance of the real and synthetic 3-way marginals."
    words = {3: "column triples", 2: "column pairs (fewer than 3 learned columns)"}.get(order, "columns (one learned)")
    fresh = _number(marginals.get("holdout_distance"))
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


def _gate_checks(gate: Mapping[str, Any]) -> str:
    """Every check with its value and rule, one table per family (fidelity, expectations, utility, privacy)."""
    checks = [c for c in gate.get("checks") or [] if isinstance(c, Mapping)]
    if not checks:
        return ""
    groups: dict[str, list[Mapping[str, Any]]] = {title: [] for _, title in _CHECK_GROUPS}
    prefixes = dict(_CHECK_GROUPS)
    for check in checks:
        groups.setdefault(prefixes.get(str(check.get("name", "")).split(".")[0], "Other"), []).append(check)
    tables = "".join(
        f"<h3>{_e(title)}</h3>"
        f"{_table(('Check', 'Value', 'Rule', 'Result'), ''.join(map(_check_row, group)), 'checks')}"
        for title, group in groups.items()
        if group
    )
    return f"<section><h2>Gate checks</h2>{tables}</section>"


def _check_row(check: Mapping[str, Any]) -> str:
    passed = bool(check.get("passed"))
    name = str(check.get("name", ""))
    label = check.get("label") or _label(name)
    words = "" if label == name else f"{_e(label)} "
    return (
        f"{_tr(passed)}<td>{words}<code class='muted'>{_e(name)}</code></td>"
        f"<td class='num'>{_e(_fmt(check.get('value')))}</td><td class='num'>{_e(_rule(check))}</td>"
        f"<td>{_badge(passed)}</td></tr>"
    )


def _rule(check: Mapping[str, Any]) -> str:
    """How the check was decided (`upper 99.9% bound ≤ 0.55`, `≥ 0.75, or within noise (p ≥ 0.001)`), with its
    interval or p-value when it has one; a bare comparison and threshold for manifests that predate rules."""
    sign = {">=": "≥ ", "<=": "≤ "}.get(str(check.get("comparison")), "")
    rule = str(check.get("rule") or sign + _fmt(check.get("threshold")))
    interval = check.get("interval")
    if isinstance(interval, list | tuple) and len(interval) == 2:
        rule += f"; interval [{_fmt(interval[0])}, {_fmt(interval[1])}]"
    if check.get("p_value") is not None:
        rule += f"; p = {_fmt(check.get('p_value'))}"
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
        f"<td>{_e(_fmt(o.get('observed')))}</td><td>{_badge(bool(o.get('success')))}</td></tr>"
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


def _utility(utility: Any) -> str:
    """Train-on-synthetic, test-on-real against train-on-real: how useful the release is for a model."""
    if not isinstance(utility, Mapping) or not utility:
        return (
            "<section><h2>Machine-learning utility</h2>"
            "<p class='muted'>No target column: utility was not measured.</p></section>"
        )
    kept = _number(utility.get("lift_kept"))
    items = {
        "Target column": utility.get("target"),
        "Task": utility.get("task"),
        "Metric": utility.get("metric"),
        "Model trained on real rows": utility.get("real_score"),
        "Model trained on synthetic rows": utility.get("synthetic_score"),
        "Guessing (majority class or mean)": utility.get("baseline_score"),
        "Share of the real model's lift kept": utility.get("lift_kept"),
        "p-value: real model no better than guessing": utility.get("real_lift_p"),
    }
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in items.items() if v is not None)
    if kept is None:
        note = "The real model is no better than guessing here, so there is no utility to keep."
    else:
        note = (f"A model trained on the synthetic rows keeps {_percent(kept)} of what a model trained on the real "
                "rows gains over guessing (both tested on real rows never trained on).")
    return (
        f"<section><h2>Machine-learning utility</h2><p>{_e(note)}</p>"
        f"<table><tbody>{rows}</tbody></table></section>"
    )


def _privacy(privacy: Any) -> str:
    """Every privacy figure of the manifest, named in words."""
    if not isinstance(privacy, Mapping) or not privacy:
        return ""
    rows = "".join(
        f"<tr><td>{_e(_privacy_label(str(name)))} <code class='muted'>{_e(name)}</code></td>"
        f"<td class='num'>{_e(_fmt(value))}</td></tr>"
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
    return _label(name)


def _per_column(details: Mapping[str, Any]) -> str:
    """Bar tables of the per-column shape and per-pair trend scores, worst first."""
    tables = [
        _bar_table(title, details[key])
        for key, title in (("column_shapes", "Column shapes"), ("pair_trends", "Column pair trends"))
        if isinstance(details.get(key), Mapping) and details[key]
    ]
    return f"<section><h2>Per column</h2><div class='grid2'>{''.join(tables)}</div></section>" if tables else ""


def _timings(timings: Any) -> str:
    """Seconds per step, with bars against the slowest."""
    if not isinstance(timings, Mapping):
        return ""
    seconds = {str(k): n for k, v in timings.items() if (n := _number(v)) is not None}
    if not seconds:
        return ""
    scale = max([*seconds.values(), 1e-9])
    rows = "".join(
        f"<tr><td>{_e(_label(name.removesuffix('_s')))}</td><td class='num'>{_e(_fmt(value))} s</td>"
        f"<td><div class='bar'><span style='width:{100 * max(value, 0.0) / scale:.1f}%'></span></div></td></tr>"
        for name, value in seconds.items()
    )
    return f"<section><h2>Timings</h2><table><tbody>{rows}</tbody></table></section>"


def _bar_table(title: str, scores: Mapping[str, Any], *, highest_first: bool = False, scale: float | None = None
               ) -> str:
    """Name, value and bar a row, worst first: lowest first for scores, highest first for blame
    (`highest_first`). Bars are out of `scale` (default 1.0, or the largest value when that is larger)."""
    numbers = {col: _number(v) for col, v in scores.items()}
    full = max([scale or 1.0, *(v for v in numbers.values() if v is not None)])
    sign = -1.0 if highest_first else 1.0
    ordered = sorted(numbers.items(), key=lambda item: (item[1] is None, sign * (item[1] or 0.0)))
    rows = "".join(
        f"<tr><td>{_e(col)}</td><td class='num'>{_e(_fmt(value))}</td>"
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
        shown = ", ".join(cats[:8]) + (", …" if len(cats) > 8 else "")
        facts.append(f"{len(cats)} categories: {shown}")
    if spec.get("bounds") is not None:
        low, high = spec["bounds"]
        if spec.get("kind") == "datetime":
            low, high = (datetime.fromtimestamp(float(b) / 1e9, UTC).isoformat(timespec="seconds") for b in (low, high))
        facts.append(f"range {_fmt(low)} … {_fmt(high)}")
    facts += [
        f"{key.replace('_', ' ')} {spec[key]}" for key in ("timezone", "datetime_format", "pii_type") if spec.get(key)
    ]
    if spec.get("integer"):
        facts.append("integer")
    return "; ".join(facts)


def _provenance(manifest: Mapping[str, Any]) -> str:
    """Where the release came from and what made it: enough to reproduce or audit it (timings have their own
    section)."""
    generator = manifest.get("generator") or {}
    release = {
        "rows": manifest.get("rows"),
        "files": len(manifest.get("files") or []) or None,
        "release_id": manifest.get("release_id"),
        "run_id": manifest.get("run_id"),
    }
    tables = [
        _kv_table(
            "Generator", {**{k: v for k, v in generator.items() if k != "params"}, **(generator.get("params") or {})}
        ),
        _kv_table("Source", manifest.get("source") or {}),
        _kv_table("Release", release),
        _kv_table("Versions", manifest.get("versions") or {}),
    ]
    return f"<section><h2>Provenance</h2><div class='grid2'>{''.join(tables)}</div>{_files(manifest)}</section>"


def _files(manifest: Mapping[str, Any]) -> str:
    files = manifest.get("files") or []
    if not files:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(f.get('path', ''))}</code></td><td class='num'>{_e(_fmt(f.get('rows')))}</td>"
        f"<td><code>{_e(f.get('sha256', ''))}</code></td></tr>"
        for f in files
    )
    return f"<h3>Files</h3>{_table(('Path', 'Rows', 'sha256'), rows)}"


def _table(headers: tuple[str, ...], rows: str, css_class: str = "") -> str:
    """A table from its header names and its already-rendered, already-escaped rows."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    opening = f"<table class='{css_class}'>" if css_class else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _kv_table(title: str, items: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(key)}</th><td><code>{_e(_fmt(value))}</code></td></tr>"
        for key, value in items.items()
        if value is not None
    )
    return f"<div><h3>{_e(title)}</h3><table><tbody>{rows}</tbody></table></div>" if rows else ""


def _tr(passed: bool) -> str:
    """A row's opening tag, tinted when it reports a failure."""
    return "<tr>" if passed else "<tr class='failed'>"


def _badge(passed: bool) -> str:
    return "<span class='badge pass'>PASS</span>" if passed else "<span class='badge fail'>FAIL</span>"


def _run_name(manifest: Mapping[str, Any]) -> str:
    return str(manifest.get("release_id") or manifest.get("run_id") or "")


def _label(name: str) -> str:
    """`exact_match_rate` → `Exact match rate`: check and metric names in words."""
    words = str(name).replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _percent(value: Any) -> str:
    """Shares as percentages, with an extra decimal for small ones so 0.04% does not read as 0.0%."""
    number = _number(value)
    if number is None:
        return "n/a"
    return f"{number:.2%}" if 0 < abs(number) < 0.1 else f"{number:.1%}"


def _fmt(value: Any) -> str:
    """A value as short text (not yet escaped)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "n/a"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
