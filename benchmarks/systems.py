"""The systems a benchmark compares: every registered synthgate generator at its defaults, and SDV's synthesizers.

`auto`, the product's default, is one of ours too: it chooses a generator on the training part as a release does
(`flows.select.choose_generator`) and fits the chosen one on the whole training part, so its fit time includes the
choice.

SDV comes with the `bench` extra and is used here only as the peer we measure against, never in the product.
Beside them every table gets two references that fit nothing: the ceiling (`real-unseen`: the holdout's real
rows, which no model saw) and the floor (`independent-columns`: each column resampled on its own from the
training part, so every relationship between columns is lost).

Every system gets the same training frame and the same schema-derived facts, and returns a frame in
the training frame's dtypes, so one evaluation code path scores them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from flows.config import AUTO_GENERATOR, RunConfig
from flows.select import choose_generator
from generators.registry import GENERATORS, create
from generators.tabular.schema import ColumnKind, Schema


class Fitted(Protocol):
    """A fitted system, ours or a peer: all the benchmark asks of it is rows (and, of `auto`, what it chose)."""

    chosen: str | None  # the generator `auto` chose; None for every other system

    def sample(self, n: int) -> pd.DataFrame:
        """`n` synthetic rows in the training frame's dtypes."""
        ...


@dataclass(frozen=True)
class System:
    """A named way to go from a training frame to a sampler; `params` are the non-default settings."""

    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)

    def fit(self, frame: pd.DataFrame, schema: Schema, seed: int) -> Fitted:
        """This system fitted on `frame`, our generator or the SDV peer alike, seeded by `seed`."""
        if self.name == AUTO_GENERATOR:
            return _Ours.chosen_for(frame, schema, seed)
        if self.family == "synthgate":
            return _Ours(create(self.name, self.params or None, seed=seed, device="auto").fit(frame, schema))
        return _SdvPeer.fit(self, frame, schema, seed)


class _Ours:
    def __init__(self, model: Any, chosen: str | None = None) -> None:
        self._model = model
        self.chosen = chosen

    @classmethod
    def chosen_for(cls, frame: pd.DataFrame, schema: Schema, seed: int) -> _Ours:
        """`auto` as a release runs it with the default config: the choice on `frame`, then the chosen model's fit.

        `frame` is the training part, as in `flows.synthesize`; the model is fitted with the parameters it was
        chosen with, seeded and placed as the run's config would (`RunConfig` defaults, this seed).
        """
        config = RunConfig(seed=seed)
        selection = choose_generator(frame, schema, config)
        model = create(selection.name, dict(selection.params), seed=seed, device=config.device).fit(frame, schema)
        return cls(model, selection.name)

    def sample(self, n: int) -> pd.DataFrame:
        result: pd.DataFrame = self._model.sample(n)
        return result


SDV_PEERS = {
    "sdv-gaussiancopula": ("GaussianCopulaSynthesizer", {}),
    "sdv-ctgan": ("CTGANSynthesizer", {}),
    "sdv-tvae": ("TVAESynthesizer", {}),
    "sdv-ctgan-capped": ("CTGANSynthesizer", {"epochs": 10}),
    "sdv-ctgan-30": ("CTGANSynthesizer", {"epochs": 30}),
}
SDV_DEFAULT_EPOCHS = 300  # CTGAN's and TVAE's default, for extrapolating a capped run
CEILING = "real-unseen"
FLOOR = "independent-columns"
REFERENCES = (CEILING, FLOOR)


def all_systems() -> dict[str, System]:
    """Every system by name: `auto`, each registered synthgate generator at its defaults, then each SDV peer."""
    ours = {name: System(name, "synthgate") for name in (AUTO_GENERATOR, *GENERATORS)}
    peers = {name: System(name, "sdv", params) for name, (_, params) in SDV_PEERS.items()}
    return ours | peers


def reference_rows(name: str, train: pd.DataFrame, holdout: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The rows of a reference: the holdout itself (ceiling), or `n` rows of independently resampled columns (floor).

    The ceiling's rows are never repeated: a duplicate would be a row the C2ST's classifier could learn by heart.
    """
    if name == CEILING:
        return holdout.reset_index(drop=True)
    rng = np.random.default_rng([seed, 43])
    return pd.DataFrame({c: train[c].iloc[rng.integers(len(train), size=n)].reset_index(drop=True)
                         for c in train.columns})


class _SdvPeer:
    """An SDV synthesizer fed metadata built from our schema (so both sides model the same columns)."""

    def __init__(self, synthesizer: Any, reference: pd.DataFrame) -> None:
        self._synthesizer = synthesizer
        self._reference = reference
        self.chosen: str | None = None

    @classmethod
    def fit(cls, system: System, frame: pd.DataFrame, schema: Schema, seed: int) -> _SdvPeer:
        import sdv.single_table
        from sdv.metadata import Metadata

        class_name, params = SDV_PEERS[system.name]
        metadata = Metadata.load_from_dict({"tables": {"table": _sdv_table(schema)}})
        synthesizer = getattr(sdv.single_table, class_name)(metadata, **params)
        synthesizer.fit({"table": _naive_utc(frame)})  # SDV 2 takes and returns {table name: frame}
        return cls(synthesizer, frame.head(0))

    def sample(self, n: int) -> pd.DataFrame:
        sampled = self._synthesizer.sample(num_rows=n)
        return _like(sampled["table"] if isinstance(sampled, dict) else sampled, self._reference)


def _sdv_table(schema: Schema) -> dict[str, Any]:
    sdtypes: dict[ColumnKind, dict[str, Any]] = {
        ColumnKind.NUMERICAL: {"sdtype": "numerical"},
        ColumnKind.CATEGORICAL: {"sdtype": "categorical"},
        ColumnKind.BOOLEAN: {"sdtype": "boolean"},
        ColumnKind.DATETIME: {"sdtype": "datetime"},
        ColumnKind.ID: {"sdtype": "id"},
        ColumnKind.TEXT: {"sdtype": "unknown", "pii": True},
    }
    columns: dict[str, dict[str, Any]] = {}
    for spec in schema:
        if spec.kind is ColumnKind.PII:
            columns[spec.name] = {"sdtype": "email" if spec.pii_type == "email" else "unknown", "pii": True}
        else:
            columns[spec.name] = dict(sdtypes[spec.kind])
    return {"columns": columns}


def _naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """SDV models naive datetimes: give it instants in UTC."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def _like(synthetic: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The peer's output in the training frame's dtypes (zones restored), so evaluation is identical."""
    out = synthetic.loc[:, list(reference.columns)].copy()
    for name, dtype in reference.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = pd.to_datetime(out[name]).dt.tz_localize("UTC").dt.tz_convert(dtype.tz)
        elif str(out[name].dtype) != str(dtype):
            try:
                out[name] = out[name].astype(dtype)
            except (TypeError, ValueError):
                out[name] = out[name].round().astype(dtype) if pd.api.types.is_integer_dtype(dtype) else out[name]
    return out
