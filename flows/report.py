"""The release report: one self-contained HTML page a data steward reads and signs off on.

Verdict first, then the scores behind it, then the facts to trace it (schema, generator, source,
timings, versions). The page has no scripts and loads nothing from anywhere, so it opens offline and
can be archived next to the data. Each section is a small function returning an HTML fragment ("" when
it has nothing to show); every value from the manifest is escaped.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# (label, path in manifest["metrics"], how to read it)
_SCORES: tuple[tuple[str, tuple[str, str], str], ...] = (
    ("Quality", ("fidelity", "quality"), "overall fidelity; higher is better"),
    ("Column shapes", ("fidelity", "column_shapes"), "per-column distributions; higher is better"),
    ("Column pair trends", ("fidelity", "column_pair_trends"), "correlations between columns; higher is better"),
    ("DCR share", ("privacy", "dcr_share"), "rows closer to training than to holdout; about 50% is ideal"),
    ("Exact-copy rate", ("privacy", "exact_match_rate"), "rows copied from the real table; lower is better"),
)

_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --ok: #1a7f37; --ok-bg: #dafbe1;
  --bad: #cf222e; --bad-bg: #ffebe9; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
  font: 15px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
header h1 { margin: 0; font-size: 1.5rem; }
header p { margin: 4px 0 0; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
h2 { font-size: 1.1rem; margin: 0 0 12px; }
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
    """The whole page for a published or refused run; `details` adds per-column tables (column → score)."""
    gate = manifest.get("gate") or {}
    sections = [
        _header(manifest),
        _verdict(gate),
        _scores(manifest.get("metrics") or {}),
        _gate_checks(gate),
        _per_column(details or {}),
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


def _verdict(gate: Mapping[str, Any]) -> str:
    """The decision in one word, and for a refusal the failed checks in words."""
    if gate.get("passed"):
        return (
            '<section class="verdict pass"><p class="word">PUBLISHED</p>'
            "<p>Every gate check passed; this synthetic release may be shared.</p></section>"
        )
    failed = [c for c in gate.get("checks", []) if not c.get("passed")]
    reasons = "".join(
        f"<li><strong>{_e(c.get('label') or _label(c.get('name', '?')))}</strong> was {_e(_fmt(c.get('value')))}"
        f" (threshold {_e(_fmt(c.get('threshold')))})</li>"
        for c in failed
    )
    because = (
        f"{len(failed)} gate check{'s' if len(failed) != 1 else ''} failed:" if failed else "The gate did not pass."
    )
    return (
        '<section class="verdict fail"><p class="word">REFUSED</p>'
        f"<p>No synthetic data was released. {_e(because)}</p>"
        f"{f'<ul>{reasons}</ul>' if reasons else ''}</section>"
    )


def _scores(metrics: Mapping[str, Any]) -> str:
    cards = "".join(
        f'<div class="card"><div class="name">{_e(label)}</div>'
        f'<div class="value">{_e(_percent((metrics.get(group) or {}).get(key)))}</div>'
        f'<div class="hint">{_e(hint)}</div></div>'
        for label, (group, key), hint in _SCORES
    )
    return f'<section><h2>Scores</h2><div class="cards">{cards}</div></section>'


def _gate_checks(gate: Mapping[str, Any]) -> str:
    checks = gate.get("checks") or []
    if not checks:
        return ""
    rows = "".join(
        f"<tr><td>{_e(c.get('label') or _label(c.get('name', '?')))} "
        f"<code class='muted'>{_e(c.get('name', ''))}</code></td>"
        f"<td class='num'>{_e(_fmt(c.get('value')))}</td><td class='num'>{_e(_fmt(c.get('threshold')))}</td>"
        f"<td>{_badge(bool(c.get('passed')))}</td></tr>"
        for c in checks
    )
    return f"<section><h2>Gate checks</h2>{_table(('Check', 'Value', 'Threshold', 'Result'), rows)}</section>"


def _per_column(details: Mapping[str, Any]) -> str:
    """One bar table per `{column: number}` mapping in `details`, worst column first."""
    tables = [_bar_table(_label(name), scores) for name, scores in details.items() if isinstance(scores, Mapping)]
    return f"<section><h2>Per column</h2><div class='grid2'>{''.join(tables)}</div></section>" if tables else ""


def _bar_table(title: str, scores: Mapping[str, Any]) -> str:
    numbers = {col: _number(v) for col, v in scores.items()}
    scale = max([1.0, *(v for v in numbers.values() if v is not None)])
    ordered = sorted(numbers.items(), key=lambda item: (item[1] is None, item[1] or 0.0))
    rows = "".join(
        f"<tr><td>{_e(col)}</td><td class='num'>{_e(_fmt(value))}</td>"
        f"<td><div class='bar'><span style='width:{100 * max(value or 0.0, 0.0) / scale:.1f}%'></span></div></td></tr>"
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
        f"<tr><td><code>{_e(name)}</code></td><td>{_e(spec.get('kind', ''))}</td>"
        f"<td><code>{_e(spec.get('dtype', ''))}</code></td>"
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
    """Where the release came from and what made it: enough to reproduce or audit it."""
    generator = manifest.get("generator") or {}
    release = {
        "rows": manifest.get("rows"),
        "files": len(manifest.get("files") or []) or None,
        "release_id": manifest.get("release_id"),
        "run_id": manifest.get("run_id"),
    }
    timings = {k: f"{_fmt(v)} s" for k, v in (manifest.get("timings") or {}).items() if v is not None}
    tables = [
        _kv_table(
            "Generator", {**{k: v for k, v in generator.items() if k != "params"}, **(generator.get("params") or {})}
        ),
        _kv_table("Source", manifest.get("source") or {}),
        _kv_table("Release", release),
        _kv_table("Timings", timings),
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


def _table(headers: tuple[str, ...], rows: str) -> str:
    """A table from its header names and its already-rendered, already-escaped rows."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _kv_table(title: str, items: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(key)}</th><td><code>{_e(_fmt(value))}</code></td></tr>"
        for key, value in items.items()
        if value is not None
    )
    return f"<div><h3>{_e(title)}</h3><table><tbody>{rows}</tbody></table></div>" if rows else ""


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
