"""The generators synthgate knows, by name: every public module of `generators/models/` is one.

A model file `generators/models/<name>.py` decorates its `Generator` subclass with `@register` and sets
`name = "<name>"`: nothing else lists it. The names are found on disk and each module is imported when it is
first asked for, so `import generators` never loads torch. A module whose name starts with `_` holds shared
model code (e.g. `_latent.py`) and is no generator.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
from typing import TYPE_CHECKING, Any, TypeVar

import generators.models
from generators.tabular.errors import BadInputError

if TYPE_CHECKING:
    from generators.base import Generator

    G = TypeVar("G", bound=type[Generator])
else:
    G = TypeVar("G")

# name -> module, in name order: found by listing the models package, which imports nothing.
GENERATORS: dict[str, str] = {
    module.name: f"{generators.models.__name__}.{module.name}"
    for module in sorted(pkgutil.iter_modules(generators.models.__path__), key=lambda m: m.name)
    if not module.name.startswith("_")
}
_REGISTERED: dict[str, type[Generator]] = {}


def register(generator_class: G) -> G:
    """Class decorator of a model: registers it under its `name`, which must be its module's name.

    Tying the name to the file keeps the registry a listing of `generators/models/`, readable without
    importing any model.
    """
    module = generator_class.__module__.rpartition(".")[2]
    if generator_class.name != module:
        raise TypeError(f"{generator_class.__name__}.name is '{generator_class.name}' but its module is "
                        f"'{module}': a generator's name is its file's name")
    _REGISTERED[generator_class.name] = generator_class
    return generator_class


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
        module = GENERATORS[name]
    except KeyError:
        raise BadInputError(f"unknown generator '{name}'; known: {', '.join(sorted(GENERATORS))}") from None
    importlib.import_module(module)
    try:
        return _REGISTERED[name]
    except KeyError:
        raise TypeError(f"{module} registers no generator: decorate its Generator subclass with @register") from None


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
