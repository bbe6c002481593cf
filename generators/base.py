"""The generator contract, written once: encoding, seeding, devices, validation and persistence.

A model subclasses `Generator`, declares `name` and a frozen `config_class`, and implements only the
maths on the encoded matrix: `_fit` (which returns the fit's `History`), `_sample`, `_score`, `_state` and
`_load_state`. Model files hold plain tensors and dicts (no pickled classes), so
`torch.load(weights_only=True)` reads them.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
import pickle
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import torch

from generators.nn.training import History
from generators.tabular.encoder import Condition, EncoderPrivacy, TabularEncoder
from generators.tabular.errors import BadInputError
from generators.tabular.schema import Schema

logger = logging.getLogger(__name__)

_FILE_FORMAT = "synthgate-generator/2"  # 2: the shared hyper-parameter names and the fit's history
_SAMPLE_STREAM = 1  # default sample seeds are drawn from their own stream of the generator seed
_REJECTION_ROUNDS = 20
_REJECTION_MAX_BATCH = 2_000_000


def resolve_device(device: str) -> torch.device:
    """`auto` is CUDA when available, else CPU; anything else must be a torch device string."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise BadInputError(f"unknown device '{device}'; use auto, cpu or cuda[:N]") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(f"device '{device}' asked for, but CUDA is not available here")
    return resolved


class Generator(abc.ABC):
    """Base class of every model: fit on a frame and its schema, then sample, score, save and load.

    A schema with no learned column (only id, PII and text) is refused with `BadInputError`: there
    is nothing to model, and regenerating such a table needs no generator.

    `holds_training_values`: the fitted state itself is made of training values (a donor model such as
    `cart`), so no release may carry it; `save(shareable=True)` refuses it.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[Any]]
    holds_training_values: ClassVar[bool] = False

    def __init__(self, config: Any = None, *, seed: int = 0, device: str = "auto") -> None:
        self.config = config if config is not None else self.config_class()
        self.seed = seed
        self.device = device
        self.privacy_spent_: dict[str, Any] | None = None  # what a differentially private fit spent

    def fit(self, df: pd.DataFrame, schema: Schema) -> Self:
        """Fit the encoder, then the model on the encoded training frame."""
        if not isinstance(self.config, self.config_class):
            raise BadInputError(f"{self.name}: config must be a {self.config_class.__name__}")
        _check_seed(self.seed)
        if df.empty:
            raise BadInputError("cannot fit a generator on an empty table")
        if not schema.learned:
            raise BadInputError("nothing to learn: every column is id, pii or text")
        started = time.perf_counter()
        self.device_ = resolve_device(self.device)
        self.privacy_spent_ = None
        self.encoder_ = TabularEncoder().fit(df, schema, seed=self.seed, privacy=self._encoder_privacy())
        x = self.encoder_.transform(df).to(self.device_)
        self.history_ = self._fit(x, self._torch_generator(self.seed))
        logger.info(
            "%s: fitted on %d rows x %d encoded columns in %.1f s (%s)",
            self.name,
            *x.shape,
            time.perf_counter() - started,
            self.device_,
        )
        return self

    def sample(self, n: int, seed: int | None = None, conditions: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Exactly `n` synthetic rows; the same `seed` (by default one derived from the generator's) repeats them.

        `conditions` ({column: value} of categorical or boolean columns) fixes those values in every row.
        """
        if not isinstance(n, int | np.integer) or n < 0:
            raise BadInputError(f"the number of rows must be a non-negative integer, got {n!r}")
        encoder = self._fitted_encoder()
        if seed is None:
            seed = sample_seed(self.seed)
        _check_seed(seed)
        fixed = encoder.conditions(conditions or {})
        generator = self._torch_generator(seed)
        with torch.no_grad():
            if not n:
                matrix = torch.zeros(0, encoder.width_)
            elif fixed:
                matrix = encoder.impose(self._sample_conditional(int(n), generator, fixed), fixed)
            else:
                matrix = self._sample(int(n), generator)
        if tuple(matrix.shape) != (n, encoder.width_):
            raise RuntimeError(f"{self.name}._sample returned shape {tuple(matrix.shape)}, not ({n}, {encoder.width_})")
        return encoder.inverse_transform(matrix, seed)

    def score(self, df: pd.DataFrame) -> np.ndarray:
        """Per-row log-likelihood (or the model's anomaly score): higher means more typical."""
        x = self._fitted_encoder().transform(df).to(self.device_)
        with torch.no_grad():
            scores = self._score(x)
        return scores.detach().to("cpu", torch.float64).numpy()

    def save(self, path: str | os.PathLike[str], shareable: bool = False) -> None:
        """Write config, seed, encoder and model state, all on the CPU, as plain tensors and dicts.

        `shareable` is for files published with a release: no hashes of real id/PII/text values. A model whose
        state is training values (`holds_training_values`) has no shareable form.
        """
        if shareable and self.holds_training_values:
            raise ValueError(f"{self.name}: its fitted state holds training values; it is never shared")
        encoder = self._fitted_encoder()
        torch.save(
            {
                "format": _FILE_FORMAT,
                "generator": self.name,
                "config": dataclasses.asdict(self.config),
                "seed": self.seed,
                "device": self.device,
                "encoder": encoder.to_state(shareable),
                "model": {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in self._state().items()},
                "privacy": self.privacy_spent_,
                "history": self.history_.to_state(),
            },
            path,
        )

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str | None = None) -> Generator:
        """The fitted generator `save` wrote, from its file's contents (see `read_state`).

        The registry's `load` picks the class by the name the file holds.
        """
        model = cls(cls.config_class(**state["config"]), seed=state["seed"],
                    device=state["device"] if device is None else device)
        model.device_ = resolve_device(model.device)
        model.encoder_ = TabularEncoder.from_state(state["encoder"])
        model.privacy_spent_ = state.get("privacy")
        model.history_ = History.from_state(state["history"])
        model._load_state({k: v.to(model.device_) if torch.is_tensor(v) else v for k, v in state["model"].items()})
        return model

    def _encoder_privacy(self) -> EncoderPrivacy | None:
        """The budget the encoder may spend on its statistics when the fit is differentially private.

        That is what the config's `encoder_privacy()` says (DP configs have one, see `generators.nn.dp.DPConfig`),
        else None.
        """
        share = getattr(self.config, "encoder_privacy", None)
        return share() if share is not None else None

    @abc.abstractmethod
    def _fit(self, x: torch.Tensor, generator: torch.Generator) -> History:
        """Learn from the encoded n x width matrix (on `device_`); all randomness from `generator`.

        Returns what the fit did (`history_`: the training loop's, or the model's own iterations).
        """

    @abc.abstractmethod
    def _sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """An n x width encoded matrix, n ≥ 1; all randomness from `generator`."""

    def _sample_conditional(self, n: int, generator: torch.Generator, fixed: tuple[Condition, ...]) -> torch.Tensor:
        """Encoded rows, `n` of them, that decode to the `fixed` values.

        This default rejects the rows that do not; models with native conditioning (a conditional vector,
        guidance) override it.
        """
        encoder = self._fitted_encoder()
        kept: list[torch.Tensor] = []
        found, batch = 0, n
        for _ in range(_REJECTION_ROUNDS):
            rows = self._sample(batch, generator)
            accepted = rows[encoder.matches(rows, fixed)]
            kept.append(accepted)
            found += len(accepted)
            if found >= n:
                return torch.cat(kept)[:n]
            rate = max(found, 1) / (batch * len(kept))
            batch = min(_REJECTION_MAX_BATCH, int(1.2 * (n - found) / rate) + 1)
        raise BadInputError(
            f"{self.name}: only {found} of {n} rows matched the conditions after {_REJECTION_ROUNDS} rounds of "
            "rejection sampling; the condition is too rare for this generator"
        )

    @abc.abstractmethod
    def _score(self, x: torch.Tensor) -> torch.Tensor:
        """One score per encoded row, higher = more typical."""

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]:
        """The fitted model as a flat dict of tensors and plain values."""

    @abc.abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None:
        """Restore what `_state` returned (its tensors already on `device_`)."""

    def _fitted_encoder(self) -> TabularEncoder:
        encoder: TabularEncoder | None = getattr(self, "encoder_", None)
        if encoder is None:
            raise RuntimeError(f"{self.name}: call fit before sample, score or save")
        return encoder

    def _torch_generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device_).manual_seed(seed)


def sample_seed(seed: int, shard: int = 0) -> int:
    """The seed a generator seeded with `seed` samples shard `shard` of its rows with.

    Shard 0's is the one `sample` uses by default; every other shard's is derived from the seed and its index
    alone, wherever and in whatever order it runs.
    """
    stream = [seed, _SAMPLE_STREAM] if shard == 0 else [seed, _SAMPLE_STREAM, shard]
    return int(np.random.SeedSequence(stream).generate_state(1)[0])


def _check_seed(seed: Any) -> None:
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise BadInputError(f"a seed must be a non-negative integer, got {seed!r}")


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What `Generator.save` wrote to `path`, as plain tensors and dicts (nothing is unpickled)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BadInputError(f"cannot read a generator from {os.fspath(path)}: {reason}") from None
    if not isinstance(state, dict) or not str(state.get("format", "")).startswith("synthgate-generator/"):
        raise BadInputError(f"{os.fspath(path)} is not a synthgate generator file")
    if state["format"] != _FILE_FORMAT:
        raise BadInputError(
            f"{os.fspath(path)} was written by another synthgate version ({state['format']}, this one reads "
            f"{_FILE_FORMAT}): fit the generator again"
        )
    return state
