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
from typing import Any

import numpy as np
import pandas as pd

from generators.inference import _PII_PATTERNS
from generators.schema import BadInputError, ColumnKind, ColumnSpec, Schema

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

    `mostly` (0.999) is the share of rows that must fall in the real category set or [min, max] range:
    fresh real rows sometimes carry a category too rare to be in the training part or a value just past
    its extremes (about 2/(n+1) of them for n training rows), while a planted fault touches whole
    percents of rows. `unseen_factor` (2.0) lowers `mostly` further for a column with many categories
    seen once: the share of such singletons estimates the share of unseen categories in new rows
    (Good-Turing), and twice that leaves room for sampling noise. `range_factor` (5.0) does the same for
    ranges: at least five times the expected share of fresh values past the real extremes may be, so a
    column of a small table is refused by chance less than once in a thousand. `null_margin` (0.05) is the absolute
    slack on the null share either way: five standard errors of a 10 % null share on 1,000 rows, and far
    below the tens of percent a broken null model produces.
    """

    mostly: float = 0.999
    unseen_factor: float = 2.0
    range_factor: float = 5.0
    null_margin: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.mostly <= 1:
            raise BadInputError(f"expectation tolerance 'mostly' must be in (0, 1], got {self.mostly}")
        if self.unseen_factor < 0 or self.range_factor < 0 or not 0 <= self.null_margin <= 1:
            raise BadInputError(
                "expectation tolerances 'unseen_factor', 'range_factor' and 'null_margin' must not be negative"
            )


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
        return len(self.outcomes)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    @property
    def success_rate(self) -> float:
        return 1.0 - len(self.failed) / self.evaluated if self.outcomes else float("nan")


def derive_expectations(
    real: pd.DataFrame, schema: Schema, tolerances: ExpectationTolerances = ExpectationTolerances()
) -> tuple[ExpectationSpec, ...]:
    """The suite of `real` (the training frame): one table-level expectation and a few per column."""
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
    for spec in schema:
        specs.extend(_column_expectations(real[spec.name], spec, tolerances))
    return tuple(specs)


def _column_expectations(series: pd.Series, spec: ColumnSpec, tol: ExpectationTolerances) -> list[ExpectationSpec]:
    """The null share for every column; type, value set or range, uniqueness and PII checks by kind."""
    kind, values = spec.kind, series.dropna()
    out = [_null_share(series, tol), _type_check(series, kind)]
    if kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN) and not values.empty:
        out.append(_value_set(values, tol))
    if kind in (ColumnKind.NUMERICAL, ColumnKind.DATETIME) and not values.empty:
        out.append(_value_range(values, tol))
    if kind is ColumnKind.ID and values.is_unique:
        out.append(ExpectationSpec(f"{spec.name}: unique values", "expect_column_values_to_be_unique", spec.name, {}))
    if kind is ColumnKind.CATEGORICAL:
        out.append(_pii_absent(values))
    return [spec for spec in out if spec is not None]


def _null_share(series: pd.Series, tol: ExpectationTolerances) -> ExpectationSpec:
    """The share of nulls within `null_margin` of the real share (GX bounds the non-null share)."""
    share = float(series.isna().mean())
    low, high = max(0.0, share - tol.null_margin), min(1.0, share + tol.null_margin)
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


def _value_set(values: pd.Series, tol: ExpectationTolerances) -> ExpectationSpec | None:
    """Values in the real set; `mostly` is lowered when many real categories were seen only once, and
    there is no set to check when fresh rows would mostly hold categories the training part lacks."""
    counts = values.value_counts()
    unseen_share = tol.unseen_factor * float((counts == 1).sum()) / len(values)
    mostly = min(tol.mostly, 1.0 - unseen_share)
    if mostly <= 0:
        return None
    value_set = sorted((_plain(v) for v in counts.index), key=lambda v: (type(v).__name__, str(v)))
    name = f"{values.name}: values in the {len(value_set)} real categories"
    if mostly < tol.mostly:
        name += f" (at least {mostly:.1%} of rows: many real categories are rare)"
    kwargs = {"value_set": value_set, "mostly": mostly}
    return ExpectationSpec(name, "expect_column_values_to_be_in_set", str(values.name), kwargs)


def _value_range(values: pd.Series, tol: ExpectationTolerances) -> ExpectationSpec:
    """Values within the real extremes. A fresh value falls past them with probability 2/(n+1) for n real
    values, so `mostly` leaves `range_factor` times that much room: on small tables the plain `mostly`
    would refuse honest rows (4,000 training rows: one fresh value in 2,000 past the range per column)."""
    low, high = _plain(values.min()), _plain(values.max())
    past_range = 2.0 / (values.notna().sum() + 1)
    kwargs = {"min_value": low, "max_value": high, "mostly": min(tol.mostly, 1.0 - tol.range_factor * past_range)}
    return ExpectationSpec(
        f"{values.name}: values within [{low}, {high}]", "expect_column_values_to_be_between", str(values.name), kwargs
    )


def _pii_absent(values: pd.Series) -> ExpectationSpec | None:
    """No value of a personal-data pattern that no real value of this categorical column has.

    The patterns go to GX as one alternation of named groups rather than GX's regex-list check, which
    scans the column once per pattern and per pass (3.5 s of a 7 s run on Adult).
    """
    text = pd.Series(values.unique()).astype(str)  # a categorical column has few distinct values
    with _quiet_regex_groups():
        absent = [kind for kind, p in _PII_PATTERNS.items() if not text.str.contains(p).any()]
    if not absent:
        return None
    regex = "|".join(f"(?P<{kind}>{_PII_PATTERNS[kind].pattern})" for kind in absent)
    name = f"{values.name}: no {'/'.join(absent)} values"
    return ExpectationSpec(name, "expect_column_values_to_not_match_regex", str(values.name), {"regex": regex})


@contextmanager
def _quiet_regex_groups() -> Iterator[None]:
    """pandas warns that the patterns' groups are not extracted; GX matches with them the same way."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This pattern is interpreted as a regular expression", UserWarning)
        yield


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones and Timestamps to datetimes, which GX's pydantic models accept."""
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
) -> ExpectationsResult:
    """Run the suite derived from `real` on `synthetic`; with `docs_dir`, write GX Data Docs there.

    GX keeps its suite, definitions and results in memory; `docs_dir` is the only place written to.
    The first call in a process also imports GX (about 5 s), which `elapsed_s` then includes.
    """
    start = time.perf_counter()
    specs = derive_expectations(real, schema, tolerances)
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
