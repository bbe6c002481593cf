"""The generators synthgate knows, by name: the one place to register a new model.

Entries are "module:Class" strings imported on demand, so `import generators` never loads torch models.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import TYPE_CHECKING, Any

from generators.tabular.errors import BadInputError

if TYPE_CHECKING:
    from generators.base import Generator

GENERATORS: dict[str, str] = {
    "gmm": "generators.models.gmm:GaussianMixtureGenerator",
    "vae": "generators.models.vae:VAEGenerator",
    "autoencoder": "generators.models.autoencoder:AutoencoderGenerator",
    "copula": "generators.models.copula:GaussianCopulaGenerator",
    "rbm": "generators.models.rbm:RBMGenerator",
    "gan": "generators.models.gan:GanGenerator",
    "ddpm": "generators.models.ddpm:TabularDiffusion",
}

# Parameters that were renamed when the generators came to share one vocabulary (see
# `generators.nn.training.TrainingConfig`): old name -> new name. Users type these into YAML, so an old name
# is refused with its new one rather than as an unknown parameter.
RENAMED: dict[str, str] = {
    "max_batch": "batch_size",  # vae, autoencoder, rbm
    "max_steps": "steps",  # gan, ddpm
    "time_limit": "steps",  # ddpm: a step budget replaces the wall clock
    "evaluations": "eval_every",  # ddpm: steps between held-out checks, not their count
    "ema": "ema_decay",  # gan
    "embedding_dim": "latent",  # gan
    "generator_dims": "hidden",  # gan
    "critic_dims": "critic_hidden",  # gan
    "width": "hidden",  # ddpm: one width per hidden layer
    "depth": "hidden",  # ddpm
    "max_width": "hidden",  # ddpm
}


def get_generator_class(name: str) -> type[Generator]:
    """The class registered under `name`, imported now."""
    try:
        target = GENERATORS[name]
    except KeyError:
        raise BadInputError(f"unknown generator '{name}'; known: {', '.join(sorted(GENERATORS))}") from None
    module, _, attribute = target.partition(":")
    generator_class: type[Generator] = getattr(importlib.import_module(module), attribute)
    return generator_class


def create(name: str, params: dict[str, Any] | None = None, seed: int = 0, device: str = "auto") -> Generator:
    """An unfitted generator whose config is the class defaults overridden by `params`; bad input fails here."""
    from generators.base import resolve_device

    resolve_device(device)
    generator_class = get_generator_class(name)
    config = generator_class.config_class()
    defaults = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    params = params or {}
    for old in params:
        if old not in defaults and RENAMED.get(old) in defaults:
            raise BadInputError(f"generator '{name}': parameter '{old}' is now '{RENAMED[old]}'")
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise BadInputError(f"generator '{name}' has no parameter(s) {unknown}; known: {sorted(defaults)}")
    for key, value in params.items():
        if isinstance(defaults[key], tuple) and not isinstance(value, list | tuple):
            raise BadInputError(f"generator '{name}': parameter '{key}' takes a list, e.g. [{value}]")
    # YAML and JSON give lists where the configs hold tuples.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    try:
        config = dataclasses.replace(config, **values)
    except TypeError as error:  # a value of the wrong type, tripping __post_init__
        raise BadInputError(f"generator '{name}': bad parameter value ({error})") from None
    return generator_class(config, seed=seed, device=device)


def load(path: str | os.PathLike[str], device: str | None = None) -> Generator:
    """The fitted generator saved at `path` (`Generator.save`), as the class registered under its name."""
    from generators.base import read_state

    state = read_state(path)
    return get_generator_class(state["generator"]).from_state(state, device)


def describe() -> list[tuple[str, str]]:
    """(name, first line of the class docstring) of every registered generator; imports them all."""
    return [(name, (get_generator_class(name).__doc__ or "").strip().split("\n")[0]) for name in GENERATORS]
