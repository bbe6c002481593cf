"""A Great Expectations suite derived from the real training frame, run on the synthetic one.

The suite states what every synthetic row must respect whatever the model: the real column set, the real
dtypes, values inside the real category sets and [min, max] ranges, null shares near the real ones, unique
ids, and no personal-data-like values in categorical columns that held none. Distribution shape is not
its job (`validation.fidelity` scores that). `derive_expectations` is plain Python (no GX import, cheap);
`check_expectations` runs the suite in an ephemeral GX context (in-memory stores, no analytics) and, when
asked, writes GX's Data Docs into one folder. Data Docs pull Bootstrap, jQuery and fonts from public CDNs,
so offline the pages show their content unstyled.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from generators.tabular.checks import CheckSpec, Context, Reading, Rule, declare
from generators.tabular.errors import BadInputError
from generators.tabular.inference import PII_PATTERNS
from generators.tabular.schema import ColumnKind, ColumnSpec, Schema

if TYPE_CHECKING:
    from validation.audit import FidelityAudit

logger = logging.getLogger(__name__)

_NUMERIC_TYPES = (
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    *(f"float{b}" for b in (16, 32, 64)),
    *(f"{p}Int{b}Dtype" for p in ("", "U") for b in (8, 16, 32, 64)),
    "Float32Dtype",
    "Float64Dtype",
)
_BOOLEAN_TYPES = ("bool", "BooleanDtype")
_NON_NULL_SHARE = "expect_column_proportion_of_non_null_values_to_be_between"
_SITE = "synthgate"
_MAX_SHOWN = 5  # unexpected values quoted in an outcome


@dataclass(frozen=True)
class ExpectationTolerances:
    """How much honest real data may deviate from the training frame's facts before an expectation fails.

    Fresh real rows sometimes carry a category the training part lacks, a value just past its extremes,
    or a slightly different null share. How often is measured on real rows the suite was not derived
    from (the holdout, when given; otherwise estimated from the training rows: Good-Turing's share of
    categories seen once, 2/(n+1) past n values' extremes), and each expectation allows the count of
    such rows that a faithful table of the checked table's size exceeds with probability at most
    `alpha` / (expectations in the suite): the upper quantile of the beta-binomial that predicts a new
    sample's count from the observed one, so a small table gets the room its noise needs and a large
    one almost none. `mostly` (0.999) caps the share that must comply from above, and `null_margin`
    (0.05) is the least slack on the null share either way: a difference below it is not worth
    refusing even when it is certain.
    """

    mostly: float = 0.999
    null_margin: float = 0.05
    alpha: float = 0.001

    def __post_init__(self) -> None:
        if not 0 < self.mostly <= 1:
            raise BadInputError(f"expectation tolerance 'mostly' must be in (0, 1], got {self.mostly}")
        if not 0 <= self.null_margin <= 1 or not 0 < self.alpha < 1:
            raise BadInputError("expectation tolerances: 'null_margin' must be in [0, 1] and 'alpha' in (0, 1)")


@dataclass(frozen=True)
class _Allowance:
    """What sizes an expectation's tolerance: the rows it is checked on, its false-alarm rate, and unseen real rows.

    `rows`: the rows an expectation is checked on; `alpha`: the false-alarm rate each expectation may
    spend; `holdout`: the real rows never used to derive the suite (None: estimate from the training rows).
    """

    rows: int
    alpha: float
    holdout: pd.DataFrame | None

    def mostly(self, cap: float, outside: float, seen: float) -> float:
        """The share of rows that must comply when `outside` of `seen` real rows fell outside."""
        return min(cap, 1.0 - self.count(outside, seen, 1.0 - self.alpha) / self.rows)

    def count(self, outside: float, seen: float, level: float) -> float:
        """The `level` quantile of the count of `rows` new rows that fall outside, predicted from `outside` of `seen`.

        The prediction is a beta-binomial: a uniform prior on the rate, updated by what was seen.
        """
        return float(stats.betabinom.ppf(level, self.rows, outside + 1.0, max(seen - outside, 0.0) + 1.0))


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation as plain data: GX's snake_case type, its column (None for table-level) and the other kwargs."""

    name: str
    expectation: str
    column: str | None
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class ExpectationOutcome:
    """How the synthetic frame fared on one expectation; `observed` is a short human-readable summary."""

    name: str
    expectation: str
    column: str | None
    success: bool
    observed: str


@dataclass(frozen=True)
class ExpectationsResult:
    """Every expectation's outcome, in suite order; `docs_index` is the Data Docs page when built."""

    outcomes: tuple[ExpectationOutcome, ...]
    elapsed_s: float
    docs_index: Path | None

    @property
    def evaluated(self) -> int:
        """How many expectations were run on the synthetic frame."""
        return len(self.outcomes)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        """The outcomes of the expectations the synthetic frame did not meet, in suite order."""
        return tuple(o for o in self.outcomes if not o.success)

    @property
    def success_rate(self) -> float:
        """The share of expectations met; NaN when none was run."""
        return 1.0 - len(self.failed) / self.evaluated if self.outcomes else float("nan")


def derive_expectations(
    real: pd.DataFrame,
    schema: Schema,
    tolerances: ExpectationTolerances = ExpectationTolerances(),
    rows: int | None = None,
    holdout: pd.DataFrame | None = None,
) -> tuple[ExpectationSpec, ...]:
    """The suite of `real` (the training frame): one table-level expectation and a few per column.

    It is for a table of `rows` rows (default: as many as `real`). `holdout`: real rows the suite is not
    derived from, whose own departures from it size the tolerances (see `ExpectationTolerances`).
    """
    missing = [name for name in schema.names if name not in real.columns]
    if missing:
        raise BadInputError(f"the real frame lacks schema column(s): {', '.join(missing)}")
    if len(real) == 0:
        raise BadInputError("the real frame has no rows to derive expectations from")
    specs = [
        ExpectationSpec(
            "columns: exactly the real column set",
            "expect_table_columns_to_match_set",
            None,
            {"column_set": schema.names, "exact_match": True},
        )
    ]
    # at most four expectations a column: null share, type, value set or range, and uniqueness or PII
    allowance = _Allowance(max(rows if rows is not None else len(real), 1), tolerances.alpha / (1 + 4 * len(schema)),
                           holdout)
    for spec in schema:
        specs.extend(_column_expectations(real[spec.name], spec, tolerances, allowance))
    return tuple(specs)


def _column_expectations(
    series: pd.Series, spec: ColumnSpec, tol: ExpectationTolerances, allowance: _Allowance
) -> list[ExpectationSpec]:
    """The null share for every column; type, value set or range, uniqueness and PII checks by kind."""
    kind, values = spec.kind, series.dropna()
    out = [_null_share(series, tol, allowance), _type_check(series, kind)]
    if kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN) and not values.empty:
        out.append(_value_set(values, tol, allowance))
    if kind in (ColumnKind.NUMERICAL, ColumnKind.DATETIME) and not values.empty:
        out.append(_value_range(values, spec, tol, allowance))
    if kind is ColumnKind.ID and values.is_unique:
        out.append(ExpectationSpec(f"{spec.name}: unique values", "expect_column_values_to_be_unique", spec.name, {}))
    if kind is ColumnKind.CATEGORICAL:
        out.append(_pii_absent(values))
    return [spec for spec in out if spec is not None]


def _null_share(series: pd.Series, tol: ExpectationTolerances, allowance: _Allowance) -> ExpectationSpec:
    """The share of nulls near the real share (GX bounds the non-null share).

    Near means within `null_margin`, or within the range a new sample's null count takes at the
    allowance's rate, predicted from every real row seen (training and holdout), whichever is wider.
    """
    seen = series if allowance.holdout is None else pd.concat([series, allowance.holdout[series.name]])
    share, nulls = float(series.isna().mean()), float(seen.isna().sum())
    low = min(share - tol.null_margin, allowance.count(nulls, len(seen), allowance.alpha / 2) / allowance.rows)
    high = max(share + tol.null_margin, allowance.count(nulls, len(seen), 1 - allowance.alpha / 2) / allowance.rows)
    low, high = max(0.0, low), min(1.0, high)
    name = f"at most {high:.1%} nulls" if low == 0 else f"{low:.1%}-{high:.1%} nulls"
    kwargs = {"min_value": 1.0 - high, "max_value": 1.0 - low}
    return ExpectationSpec(f"{series.name}: {name}", _NON_NULL_SHARE, str(series.name), kwargs)


def _type_check(series: pd.Series, kind: ColumnKind) -> ExpectationSpec | None:
    """Numbers stay numeric, booleans boolean, datetimes datetime (tz-aware when the real ones are).

    GX's type-list check cannot name a tz-aware dtype, so datetimes use the single-type check on the
    dtype's scalar type (`Timestamp` for tz-aware, `datetime64` for naive columns).
    """
    column = str(series.name)
    if kind is ColumnKind.DATETIME:
        aware = getattr(series.dtype, "tz", None) is not None
        kwargs: dict[str, Any] = {"type_": "Timestamp" if aware else "datetime64"}
        label = "tz-aware datetimes" if aware else "naive datetimes"
        return ExpectationSpec(f"{column}: {label}", "expect_column_values_to_be_of_type", column, kwargs)
    types = {ColumnKind.NUMERICAL: ("numbers", _NUMERIC_TYPES), ColumnKind.BOOLEAN: ("booleans", _BOOLEAN_TYPES)}
    if kind not in types:
        return None
    label, type_list = types[kind]
    kwargs = {"type_list": list(type_list)}
    return ExpectationSpec(f"{column}: {label}", "expect_column_values_to_be_in_type_list", column, kwargs)


def _value_set(values: pd.Series, tol: ExpectationTolerances, allowance: _Allowance) -> ExpectationSpec | None:
    """Values in the real set, with room for the categories fresh rows hold that the training part lacks.

    The room is as much as the holdout's values show, else Good-Turing's estimate (categories seen once);
    there is no set to check when fresh rows would mostly hold categories the training part lacks.
    """
    counts = values.value_counts()
    if allowance.holdout is None:
        outside, seen = max(float((counts == 1).sum()), 1.0), float(len(values))
    else:
        fresh = allowance.holdout[values.name].dropna()
        outside, seen = float((~fresh.isin(set(counts.index))).sum()), float(len(fresh))
    mostly = allowance.mostly(tol.mostly, outside, seen)
    if mostly <= 0:
        return None
    value_set = sorted((_plain(v) for v in counts.index), key=lambda v: (type(v).__name__, str(v)))
    name = f"{values.name}: values in the {len(value_set)} real categories"
    if mostly < tol.mostly:
        name += f" (at least {mostly:.1%} of rows: real categories are rare or the table is small)"
    kwargs = {"value_set": value_set, "mostly": mostly}
    return ExpectationSpec(name, "expect_column_values_to_be_in_set", str(values.name), kwargs)


def _value_range(values: pd.Series, spec: ColumnSpec, tol: ExpectationTolerances, allowance: _Allowance
                 ) -> ExpectationSpec:
    """Values within the column's known domain: the real extremes, widened to the schema's bounds.

    The schema's bounds are what the generator was told the column may hold: the whole table's range, or
    the user's. Fresh values fall past the domain as often as the holdout's do (else 2/(n+1) of the time
    past n values' extremes), and `mostly` leaves room for that.
    """
    low, high = values.min(), values.max()
    if spec.bounds is not None:
        known = [_from_bound(bound, values) for bound in spec.bounds]
        low, high = min(low, known[0]), max(high, known[1])
    if allowance.holdout is None:
        outside, seen = 2.0, float(len(values) + 1)
    else:
        fresh = allowance.holdout[values.name].dropna()
        outside, seen = float(((fresh < low) | (fresh > high)).sum()), float(len(fresh))
    low, high = _plain(low), _plain(high)
    kwargs = {"min_value": low, "max_value": high, "mostly": allowance.mostly(tol.mostly, outside, seen)}
    return ExpectationSpec(
        f"{values.name}: values within [{low}, {high}]", "expect_column_values_to_be_between", str(values.name), kwargs
    )


def _from_bound(bound: float, values: pd.Series) -> Any:
    """A schema bound in the column's own type.

    That is a number, or a Timestamp from UTC epoch nanoseconds in the column's zone (naive columns stay
    naive).
    """
    if not pd.api.types.is_datetime64_any_dtype(values):
        return bound
    stamp = pd.Timestamp(int(bound), tz="UTC")
    zone = getattr(values.dtype, "tz", None)
    return stamp.tz_convert(zone) if zone is not None else stamp.tz_localize(None)


def _pii_absent(values: pd.Series) -> ExpectationSpec | None:
    """No value of a personal-data pattern that no real value of this categorical column has.

    The patterns go to GX as one alternation of named groups rather than GX's regex-list check, which
    scans the column once per pattern and per pass (3.5 s of a 7 s run on Adult).
    """
    text = pd.Series(values.unique()).astype(str)  # a categorical column has few distinct values
    with _quiet_regex_groups():
        absent = [kind for kind, p in PII_PATTERNS.items() if not text.str.contains(p).any()]
    if not absent:
        return None
    regex = "|".join(f"(?P<{kind}>{PII_PATTERNS[kind].pattern})" for kind in absent)
    name = f"{values.name}: no {'/'.join(absent)} values"
    return ExpectationSpec(name, "expect_column_values_to_not_match_regex", str(values.name), {"regex": regex})


@contextmanager
def _quiet_regex_groups() -> Iterator[None]:
    """Silence pandas' warning that the patterns' groups are not extracted; GX matches with them the same way."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This pattern is interpreted as a regular expression", UserWarning)
        yield


def _plain(value: Any) -> Any:
    """NumPy scalars to Python ones and Timestamps to datetimes, which GX's pydantic models accept."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if isinstance(value, np.generic) else value


def check_expectations(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    *,
    docs_dir: Path | None = None,
    tolerances: ExpectationTolerances = ExpectationTolerances(),
    holdout: pd.DataFrame | None = None,
) -> ExpectationsResult:
    """Run the suite derived from `real` on `synthetic`; with `docs_dir`, write GX Data Docs there.

    `holdout`: real rows the suite is not derived from, which size its tolerances (see
    `ExpectationTolerances`).

    GX keeps its suite, definitions and results in memory; `docs_dir` is the only place written to.
    The first call in a process also imports GX (about 5 s), which `elapsed_s` then includes.
    """
    start = time.perf_counter()
    specs = derive_expectations(real, schema, tolerances, rows=len(synthetic), holdout=holdout)
    raw = _run_suite(specs, synthetic, docs_dir)
    by_name = {r.expectation_config.meta["synthgate"]: r for r in raw.results}
    outcomes = tuple(_outcome(spec, by_name[spec.name]) for spec in specs)
    elapsed = time.perf_counter() - start
    docs_index = docs_dir / "index.html" if docs_dir is not None else None
    failed = [o.name for o in outcomes if not o.success]
    logger.info("expectations: %d/%d passed in %.1f s", len(outcomes) - len(failed), len(outcomes), elapsed)
    if failed:
        logger.warning("expectations failed: %s", "; ".join(failed))
    return ExpectationsResult(outcomes, elapsed, docs_index)


def _run_suite(specs: tuple[ExpectationSpec, ...], frame: pd.DataFrame, docs_dir: Path | None) -> Any:
    """One GX validation of `frame` in a fresh ephemeral context; the suite's validation result."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction, ValidationAction
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={} if docs_dir is None else {_SITE: _site_config(docs_dir)},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = context.data_sources.add_pandas("synthetic").add_dataframe_asset("table")
    # Built whole before it is stored: GX re-serialises a stored suite on every expectation added to it.
    suite = context.suites.add(gx.ExpectationSuite(name="real", expectations=[_to_gx(s) for s in specs]))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="synthetic", data=batch.add_batch_definition_whole_dataframe("all"), suite=suite)
    )
    actions: list[ValidationAction] = []
    if docs_dir is not None:
        actions.append(UpdateDataDocsAction(name="docs", site_names=[_SITE]))
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name="synthgate", validation_definitions=[definition], actions=actions, result_format="BASIC")
    )
    with _quiet_regex_groups():
        result = checkpoint.run(batch_parameters={"dataframe": frame})
    return next(iter(result.run_results.values()))


def _to_gx(spec: ExpectationSpec) -> Any:
    from great_expectations.expectations.registry import get_expectation_impl

    column: dict[str, Any] = {} if spec.column is None else {"column": spec.column}
    return get_expectation_impl(spec.expectation)(**column, **spec.kwargs, meta={"synthgate": spec.name})


def _site_config(docs_dir: Path) -> dict[str, Any]:
    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }


def _outcome(spec: ExpectationSpec, raw: Any) -> ExpectationOutcome:
    return ExpectationOutcome(spec.name, spec.expectation, spec.column, bool(raw.success), _observed(spec, raw))


def _observed(spec: ExpectationSpec, raw: Any) -> str:
    """GX's result in a few words: an error, the observed value, or the unexpected share and examples."""
    error = _error_message(raw.exception_info or {})
    if error is not None:
        return f"error: {error}"
    result: Mapping[str, Any] = raw.result or {}
    if spec.expectation == _NON_NULL_SHARE and result.get("observed_value") is not None:
        return f"{1.0 - float(result['observed_value']):.2%} nulls"  # named by nulls, as the spec is
    if "observed_value" in result:
        return f"observed {_short(result['observed_value'])}"
    if "unexpected_percent" in result:
        shown = [_plain(v) for v in result.get("partial_unexpected_list", [])[:_MAX_SHOWN]]
        examples = f", e.g. {_short(shown)}" if shown else ""
        return f"{result['unexpected_percent'] or 0.0:.3g}% unexpected{examples}"
    return "no observation"


def _error_message(info: Mapping[str, Any]) -> str | None:
    """The first exception message: GX gives one info dict, or one per metric that failed to compute."""
    infos = [info, *(v for v in info.values() if isinstance(v, Mapping))]
    for item in infos:
        if item.get("raised_exception") or item.get("exception_message"):
            lines = str(item.get("exception_message") or "").strip().splitlines()
            return lines[0] if lines else "GX raised an exception"
    return None


def _short(value: Any, limit: int = 120) -> str:
    text = f"{_plain(value):.4g}" if isinstance(value, float | np.floating) else str(_plain(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _outcomes(audit: FidelityAudit, context: Context) -> Iterator[Reading]:
    for outcome in audit.expectations.outcomes:
        yield Reading(1.0 if outcome.success else 0.0, f".{outcome.expectation}[{outcome.column or 'table'}]",
                      f"Expectation: {outcome.name}")


declare(CheckSpec(
    name="expectations", instances=".<type>[c]", label="Expectation of the suite derived from the real rows",
    direction=">=", threshold=1.0, rule=Rule.PLAIN, evidence="fidelity", read=_outcomes, order=80,
    refuses="an expectation of the Great Expectations suite derived from the real training rows fails: column "
            "set, types, value sets, ranges (the schema's known bounds), null fractions, unique ids, no PII "
            "patterns; each allows the rows a faithful table of this size steps out by chance, as the holdout "
            "shows (Data Docs in `expectations/`)",
))
