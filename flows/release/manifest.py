"""The manifest: the one typed record of a run (`run` or `evaluate`, released or refused).

It is built here from the run's evidence, written as `manifest.json` (contract keys listed in the README), read
back from it, and read by every renderer (the report, the CLI, the Prefect artifacts), which share one way to show
a value.

Reading is lenient where a manifest written by another version may differ: a missing section is None, a
table of numbers that is not a mapping reads as an empty one; a record that is there (the gate's checks,
the source, the split, the files) must be whole, since a verdict or a provenance that cannot be read
vouches for nothing.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flows.gate import Verdict
from flows.sources import SourceInfo
from generators.tabular.schema import Schema
from privacy.audit import PrivacyAudit
from validation.audit import FidelityAudit

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from privacy.distance import PrivacyResult

_VERSIONED = ("synthgate", "torch", "sdmetrics", "prefect", "pandas", "pyarrow", "great-expectations")
EXPECTATIONS_DOCS = "expectations"  # the release's sub-folder holding GX's Data Docs
R = TypeVar("R", bound="DataclassInstance")


@dataclass(frozen=True)
class FileRecord:
    """A file of a release: its path inside the release, its sha256 and, for a data part, its rows."""

    path: str
    sha256: str
    rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The file's entry in the manifest; `rows` only for a data part."""
        return {"path": self.path, "sha256": self.sha256, **({"rows": self.rows} if self.rows is not None else {})}


@dataclass(frozen=True)
class GeneratorRecord:
    """What made the rows: the generator, its full hyper-parameters (defaults included), seed and device.

    Also the differential-privacy budget its fit spent (None without DP) and, with `auto`, how it was chosen
    (`flows.select.Selection.to_dict()`).
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    device: str | None = None
    differential_privacy: Mapping[str, Any] | None = None
    selection: Mapping[str, Any] | None = None
    cache_key: str | None = None
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `generator` entry; `selection` only when `auto` chose the generator.

        `cache_key` names the trained model in the dataset's model cache (training rows, generator config and
        synthgate version); `reused` says the fit was skipped because that model was already there.
        """
        described = {"name": self.name, "params": dict(self.params), "seed": self.seed, "device": self.device,
                     "differential_privacy": self.differential_privacy, "cache_key": self.cache_key,
                     "reused": self.reused}
        return described | ({"selection": self.selection} if self.selection is not None else {})


@dataclass(frozen=True)
class Split:
    """The training and holdout rows the evidence was measured on.

    `holdout_fraction` for a run, which draws the holdout itself (`evaluate` is handed its parts). `fitted_rows`:
    the rows the generator saw (a seeded sample of the training side when it is longer than `train_rows` allows);
    `checked_rows`: the most rows of each table the sampled checks read (exact copies are counted on every row).
    """

    train_rows: int
    holdout_rows: int
    seed: int
    holdout_fraction: float | None = None
    fitted_rows: int | None = None
    checked_rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `split` entry; `holdout_fraction` and the sample sizes only when the run drew them."""
        drawn = {key: value for key, value in (("holdout_fraction", self.holdout_fraction),
                                               ("fitted_rows", self.fitted_rows),
                                               ("checked_rows", self.checked_rows)) if value is not None}
        return {"train_rows": self.train_rows, "holdout_rows": self.holdout_rows, **drawn, "seed": self.seed}


@dataclass(frozen=True)
class Sampling:
    """How a run sampled its rows.

    `rebalance`: the column whose values got equal shares; `shards`: how many shards of at most `shard_rows` rows
    (each seeded from the run's seed and its index).
    """

    rebalance: str | None = None
    shards: int | None = None
    shard_rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `sampling` entry; the shards only when the rows were sampled in shards."""
        sharded = {} if self.shards is None else {"shards": self.shards, "shard_rows": self.shard_rows}
        return {"rebalance": self.rebalance, **sharded}


@dataclass(frozen=True)
class FidelityMetrics:
    """The fidelity headline: sdmetrics' quality (and its two halves) and diagnostic, and the GX suite's counts.

    Also the classifier two-sample AUC with its interval, and the 3-way marginal distance against real unseen rows'
    (these last two reported, not gated).
    """

    quality: float | None = None
    column_shapes: float | None = None
    column_pair_trends: float | None = None
    diagnostic: float | None = None
    expectations_evaluated: int | None = None
    expectations_failed: int | None = None
    c2st_auc: float | None = None
    c2st_auc_low: float | None = None
    c2st_auc_high: float | None = None
    marginal_tv_3way: float | None = None
    marginal_tv_ratio: float | None = None


@dataclass(frozen=True)
class UtilityMetrics:
    """`validation.utility.UtilityResult` as recorded: the three models' scores on the holdout and both p-values.

    Also the synthetic-over-real `ratio` and the share of the real model's lift kept.
    """

    target: str | None = None
    task: str | None = None
    metric: str | None = None
    real_score: float | None = None
    synthetic_score: float | None = None
    baseline_score: float | None = None
    real_lift_p: float | None = None
    gap_p: float | None = None
    ratio: float | None = None
    lift_kept: float | None = None


@dataclass(frozen=True)
class PrivacyMetrics:
    """The privacy figures, by name, in the order the report lists them.

    They are the distances' and the attacks' numbers with their interval bounds as `_low`/`_high`, the
    membership attacks flattened as `membership_tpr_<low|1|10>_fpr_<attack>`: one table of some sixty numbers that
    the manifest and the report show whole. The figures a reader looks at first are fields.
    """

    figures: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dcr_share(self) -> float | None:
        """Share of synthetic rows nearer a training row than a holdout row (0.5 when nothing leaks)."""
        return number(self.figures.get("dcr_share"))

    @property
    def exact_match_rate(self) -> float | None:
        """Share of synthetic rows equal to a training row on the learned columns."""
        return number(self.figures.get("exact_match_rate"))


@dataclass(frozen=True)
class Metrics:
    """What was measured: fidelity, utility (None without a target column), and privacy."""

    fidelity: FidelityMetrics = FidelityMetrics()
    utility: UtilityMetrics | None = None
    privacy: PrivacyMetrics = PrivacyMetrics()

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `metrics` entry, each section as plain values."""
        return {"fidelity": asdict(self.fidelity), "utility": None if self.utility is None else asdict(self.utility),
                "privacy": dict(self.privacy.figures)}


@dataclass(frozen=True)
class Drift:
    """How this release moved since `previous` (the release `CURRENT` named when the run started).

    Per learned column, a total-variation distance in [0, 1]: `source` between the two runs' real sources (from the
    previous release's private profile; no real value or quantile is recorded here), `synthetic` between this
    release's rows and the previous release's published rows. `source_rows_added`/`_removed` count rows as
    multisets. Under differential privacy the source side is None: it is measured on private data outside the budget.
    """

    previous: str
    synthetic: Mapping[str, float] = field(default_factory=dict)
    source: Mapping[str, float] | None = None
    source_rows_added: int | None = None
    source_rows_removed: int | None = None

    @property
    def largest_source(self) -> tuple[str, float] | None:
        """The source column that moved most, with its distance; None without a source side."""
        source = self.source
        if not source:
            return None
        column = max(source, key=source.__getitem__)
        return column, source[column]

    def without_source(self) -> Drift:
        """The synthetic side only, as a differentially private release records it."""
        return Drift(self.previous, self.synthetic)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `drift` entry; the source side (and `largest_source`) only when it was measured."""
        largest = self.largest_source
        source = {} if self.source is None else {
            "source_rows_added": self.source_rows_added, "source_rows_removed": self.source_rows_removed,
            "source": dict(self.source),
            "largest_source": None if largest is None else {"column": largest[0], "distance": largest[1]}}
        return {"previous": self.previous, **source, "synthetic": dict(self.synthetic)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Drift:
        """The record `to_dict` wrote (`largest_source` is derived, so it is not read)."""
        source = data.get("source")
        return cls(str(data["previous"]), _mapping(data.get("synthetic")),
                   dict(source) if isinstance(source, Mapping) else None,
                   data.get("source_rows_added"), data.get("source_rows_removed"))


@dataclass(frozen=True)
class Manifest:
    """One run's record.

    A `run` has a `generator` and `sampling`; `evaluate` has `evaluation` (the three tables' paths) instead. A
    published release has `release_id`, `rows`, `files` and `model`; a refusal has `run_id`. `fingerprint` is the
    sha256 of what decides a run's output (the source's rows and the run config, `out` aside): a scheduled run
    whose fingerprint equals the current release's has nothing new to publish.
    """

    dataset: str
    created_at: str
    gate: Verdict
    source: SourceInfo | None = None
    split: Split | None = None
    metrics: Metrics = Metrics()
    timings: Mapping[str, float] = field(default_factory=dict)
    schema: Mapping[str, Any] | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    generator: GeneratorRecord | None = None
    sampling: Sampling | None = None
    evaluation: Mapping[str, str] | None = None
    release_id: str | None = None
    run_id: str | None = None
    rows: int | None = None
    files: tuple[FileRecord, ...] = ()
    model: FileRecord | None = None
    fingerprint: str | None = None
    drift: Drift | None = None

    @property
    def passed(self) -> bool:
        """Whether the gate passed the run, as its verdict's checks say."""
        return self.gate.passed

    @property
    def outcome(self) -> str:
        """The verdict in one word: `published` (a run's release) or `passed` (an evaluation), else `refused`."""
        if not self.passed:
            return "refused"
        return "passed" if self.evaluation is not None else "published"

    @property
    def name(self) -> str:
        """The release's id, or the refused run's."""
        return self.release_id or self.run_id or ""

    def released(self, release_id: str, dataset: str) -> Manifest:
        """This manifest as the release `release_id` of `dataset` (its rows and files are added as written)."""
        return replace(self, release_id=release_id, dataset=dataset, created_at=self.created_at or _now())

    def refused(self, run_id: str, dataset: str) -> Manifest:
        """This manifest as the refused run `run_id` of `dataset`."""
        return replace(self, run_id=run_id, dataset=dataset, created_at=self.created_at or _now())

    def to_dict(self) -> dict[str, Any]:
        """The contract's keys (README, "What a run writes"); sections a run does not have are left out."""
        sections: dict[str, Any] = {
            "release_id": self.release_id,
            "run_id": self.run_id,
            "dataset": self.dataset,
            "created_at": self.created_at,
            "evaluation": None if self.evaluation is None else dict(self.evaluation),
            "generator": None if self.generator is None else self.generator.to_dict(),
            "source": None if self.source is None else self.source.to_dict(),
            "split": None if self.split is None else self.split.to_dict(),
            "sampling": None if self.sampling is None else self.sampling.to_dict(),
            "rows": self.rows,
            "files": [part.to_dict() for part in self.files] if self.files else None,
            "model": None if self.model is None else self.model.to_dict(),
            "metrics": self.metrics.to_dict(),
            "drift": None if self.drift is None else self.drift.to_dict(),
            "timings": dict(self.timings),
            "gate": self.gate.to_dict(),
            "schema": None if self.schema is None else dict(self.schema),
            "versions": dict(self.versions),
            "fingerprint": self.fingerprint,
        }
        return {key: value for key, value in sections.items() if value is not None}

    def to_json(self) -> str:
        """Strict JSON (NaN and infinities as null), as `manifest.json` holds it."""
        return json.dumps(jsonable(self.to_dict()), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """A manifest from the text of a `manifest.json`, read as `from_dict` reads it."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """A manifest as `to_dict` wrote it, or as an older version did (see the module's note)."""
        metrics = _mapping(data.get("metrics"))
        generator = data.get("generator")
        model = data.get("model")
        return cls(
            dataset=str(data.get("dataset") or ""),
            created_at=str(data.get("created_at") or ""),
            gate=Verdict.from_dict(_mapping(data.get("gate"))),
            source=_source(data.get("source")),
            split=_record(Split, data.get("split")),
            metrics=Metrics(_record(FidelityMetrics, metrics.get("fidelity")) or FidelityMetrics(),
                            _record(UtilityMetrics, metrics.get("utility")),
                            PrivacyMetrics(_mapping(metrics.get("privacy")))),
            timings=_mapping(data.get("timings")),
            schema=data.get("schema") if isinstance(data.get("schema"), Mapping) else None,
            versions=_mapping(data.get("versions")),
            generator=_record(GeneratorRecord, generator) if isinstance(generator, Mapping) and "name" in generator
            else None,
            sampling=_record(Sampling, data.get("sampling")),
            evaluation=data.get("evaluation") if isinstance(data.get("evaluation"), Mapping) else None,
            release_id=data.get("release_id"),
            run_id=data.get("run_id"),
            rows=data.get("rows"),
            files=tuple(FileRecord(**part) for part in data.get("files") or ()),
            model=FileRecord(**model) if isinstance(model, Mapping) else None,
            fingerprint=data.get("fingerprint"),
            drift=Drift.from_dict(data["drift"]) if isinstance(data.get("drift"), Mapping) else None,
        )


def build_manifest(
    *,
    dataset: str,
    source: SourceInfo,
    schema: Schema,
    split: Split,
    fidelity: FidelityAudit,
    privacy: PrivacyAudit,
    verdict: Verdict,
    timings: Mapping[str, float],
    generator: GeneratorRecord | None = None,
    sampling: Sampling | None = None,
    evaluation: Mapping[str, str] | None = None,
    rows: int | None = None,
    fingerprint: str | None = None,
    drift: Drift | None = None,
) -> Manifest:
    """Everything known about a run before it is published.

    For `run`, with its `generator` and `sampling`; for `evaluate`, with the three tables' paths (`evaluation`) and
    the synthetic table's `rows`. Publishing adds the release's id, rows and files, or the refusal's run id.
    `timings`: the run's own steps; the audits' parts are added. `drift`: since the previous release; under
    differential privacy its source side is left out (measured on private data that no budget paid for).
    """
    utility = fidelity.utility
    every_timing = {**timings, **fidelity.timings, **privacy.timings}
    private = generator is not None and generator.differential_privacy is not None
    return Manifest(
        dataset=dataset,
        created_at=_now(),
        gate=verdict,
        source=source,
        split=split,
        metrics=Metrics(
            fidelity=FidelityMetrics(
                quality=fidelity.quality.quality,
                column_shapes=fidelity.quality.column_shapes,
                column_pair_trends=fidelity.quality.column_pair_trends,
                diagnostic=fidelity.diagnostic,
                expectations_evaluated=fidelity.expectations.evaluated,
                expectations_failed=len(fidelity.expectations.failed),
                c2st_auc=fidelity.c2st.auc,
                c2st_auc_low=fidelity.c2st.auc_ci[0],
                c2st_auc_high=fidelity.c2st.auc_ci[1],
                marginal_tv_3way=fidelity.marginals.distance,
                marginal_tv_ratio=fidelity.marginals.ratio,
            ),
            utility=None if utility is None else UtilityMetrics(**asdict(utility), ratio=utility.ratio,
                                                                lift_kept=utility.lift_kept),
            privacy=PrivacyMetrics(_privacy_figures(privacy)),
        ),
        timings={key: round(value, 3) for key, value in every_timing.items()},
        schema=_public_schema(schema, private),
        versions=versions(),
        generator=generator,
        sampling=sampling,
        evaluation=evaluation,
        rows=rows,
        fingerprint=fingerprint,
        drift=drift.without_source() if private and drift is not None else drift,
    )


def _public_schema(schema: Schema, private: bool) -> dict[str, Any]:
    """The schema as the release states it.

    Under differential privacy the categories and bounds inferred from the data are left out: they are facts about
    the real rows that no privacy budget paid for. A column's declared public domain (`public: true`) is kept: it was
    no secret.
    """
    public = schema.to_dict()
    if private:
        for spec in public["columns"].values():
            if spec.get("public"):
                continue
            spec.pop("categories", None)
            spec.pop("bounds", None)
    return public


def _privacy_figures(privacy: PrivacyAudit) -> dict[str, Any]:
    """The privacy table: PII found, every distance figure, each attack's risk and rates, the column inference attacked.

    Distance intervals are written as `_low`/`_high` and column lists joined; the elapsed time goes to `timings`.
    """
    attacks = privacy.attacks
    risks = {
        f"{label}_{key}": value
        for label, attack in (("singling_out", attacks.singling_out),
                              ("singling_out_univariate", attacks.singling_out_univariate),
                              ("linkability", attacks.linkability), ("inference", attacks.inference))
        for key, value in (("risk", attack.risk), ("risk_low", attack.risk_ci[0]), ("risk_high", attack.risk_ci[1]),
                           ("attack_rate", attack.attack_rate), ("control_rate", attack.control_rate))
    }
    distances: dict[str, Any] = {}
    for key, value in asdict(privacy.distances).items():
        if key == "membership":
            distances.update(_membership_figures(privacy.distances))
            continue
        if key == "elapsed_s":
            continue
        if key.endswith("_ci"):
            distances[f"{key[:-3]}_low"], distances[f"{key[:-3]}_high"] = value
        elif isinstance(value, tuple):
            distances[key] = ", ".join(map(str, value))
        else:
            distances[key] = value
    return {"pii_leaks": privacy.pii.leaked_cells, **distances, **risks, "inference_column": attacks.inference_column}


def _membership_figures(distances: PrivacyResult) -> dict[str, Any]:
    """Each membership attack's AUC, then its TPR at each FPR, flat: `membership_tpr_<low|1|10>_fpr_<attack>`."""
    figures: dict[str, Any] = {}
    for attack, score in distances.membership.items():
        figures[f"membership_auc_{attack}"] = score.auc.auc
        figures[f"membership_auc_{attack}_low"], figures[f"membership_auc_{attack}_high"] = score.auc.ci
    for fpr in next(iter(distances.membership.values())).tpr if distances.membership else ():
        at = "low" if fpr == distances.membership_low_fpr else f"{100 * fpr:g}"
        for attack, score in distances.membership.items():
            figures[f"membership_tpr_{at}_fpr_{attack}"] = score.tpr[fpr].tpr
            figures[f"membership_tpr_{at}_fpr_{attack}_low"], figures[f"membership_tpr_{at}_fpr_{attack}_high"] = (
                score.tpr[fpr].ci)
    return figures


def report_details(fidelity: FidelityAudit) -> dict[str, Any]:
    """What the report shows beyond the manifest.

    Per-column and per-pair scores, figures, GX outcomes, the columns and pairs that give the synthetic rows away to
    a classifier, how the marginal distance was taken.
    """
    outcomes = sorted(fidelity.expectations.outcomes, key=lambda o: o.success)
    return {
        "column_shapes": {name: shape.value for name, shape in fidelity.columns.shapes.items()},
        "pair_trends": {name: pair.value for name, pair in fidelity.columns.pairs.items()},
        "figures": fidelity.figures,
        "expectations": [{"name": o.name, "success": o.success, "observed": o.observed} for o in outcomes],
        "expectations_docs": f"{EXPECTATIONS_DOCS}/index.html" if fidelity.expectations.docs_index else None,
        "c2st": {"rows": fidelity.c2st.rows, "importance": fidelity.c2st.importance,
                 "worst_pairs": [list(pair) for pair in fidelity.c2st.worst_pairs]},
        "marginals": asdict(fidelity.marginals),
    }


def versions() -> dict[str, str]:
    """Versions of Python and of the packages whose behaviour shapes the release."""
    found = {"python": platform.python_version()}
    for package in _VERSIONED:
        try:
            found[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package.replace("-", "_")] = "not installed"
    return found


def shown(value: Any) -> str:
    """A manifest's value as short text, the same in the report, the CLI and the Prefect artifacts.

    Numbers to four significant digits (counts whole, with separators), NaN as n/a, a missing value as a dash.
    """
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


def jsonable(value: Any) -> Any:
    """Plain, strict JSON: numpy values to Python ones, dates to ISO text, NaN/inf to null."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one: a malformed table reads as a missing one."""
    return dict(value) if isinstance(value, Mapping) else {}


def _record(kind: type[R], value: Any) -> R | None:
    """A flat record from its JSON mapping (fields it lacks at their defaults); None when it is not one."""
    if not isinstance(value, Mapping):
        return None
    names = {f.name for f in fields(kind)}
    return kind(**{key: item for key, item in value.items() if key in names})


def _source(value: Any) -> SourceInfo | None:
    if not isinstance(value, Mapping):
        return None
    known = {f.name for f in fields(SourceInfo)}
    found = {key: item for key, item in value.items() if key in known}
    if found.get("na_values") is not None:
        found["na_values"] = tuple(found["na_values"])
    return SourceInfo(**found)



def number(value: Any) -> float | None:
    """A figure as a finite float, or None when it is missing, not a number, NaN or infinite (one read for all)."""
    try:
        figure = float(value)
    except (TypeError, ValueError):
        return None
    return figure if math.isfinite(figure) else None
