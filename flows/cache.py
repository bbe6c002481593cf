"""The dataset's model cache: a rerun on the same training rows and config loads its model instead of fitting.

Entries live in `OUT/<dataset>/.models/<key>/`: `generator.pt` for a fitted model (the full `Generator.save` file,
so a reused model samples exactly what the fitted one did), `selection.json` for `auto`'s choice. The key is a
sha256 over the training rows' digest (`rows_digest`), the schema, the generator and everything that shapes its fit,
and the synthgate version, so a new version never reads an old model. A file is written whole (a temp file beside
it, fsynced, renamed) and read leniently: an entry that is missing, torn or unreadable is a miss, with a warning,
never a failure, since the cache only ever saves time.

The cache is bounded: after each store only the newest `KEEP` entries of the dataset stay (a hit counts as use, so
a model still being reused is kept). It lives here, beside the steps that consult it, and not in `flows.release`:
the full model holds hashes of the real id and PII values, so it is never part of what a release shares.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from flows.release.manifest import jsonable
from flows.release.publish import dataset_folder
from generators import registry
from generators.base import Generator
from generators.tabular.schema import Schema

MODELS = ".models"  # under OUT/<dataset>/; a leading dot, so no release or run id can clash with it
MODEL_FILE = "generator.pt"
SELECTION_FILE = "selection.json"
KEEP = 3  # entries kept per dataset: each is a whole model, and only the newest ever get reused

log = logging.getLogger(__name__)


def rows_digest(frame: pd.DataFrame) -> str:
    """A sha256 of the rows, their column names and dtypes; equal frames give it whatever their memory layout.

    The values are hashed by `pd.util.hash_pandas_object` (row by row, index left out), which reads values, not
    pandas' blocks, so a frame read again from the same source hashes the same.
    """
    hashed = hashlib.sha256()
    hashed.update(json.dumps([[str(name), str(dtype)] for name, dtype in frame.dtypes.items()]).encode())
    hashed.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return hashed.hexdigest()


def digest(**parts: Any) -> str:
    """The sha256 of `parts` (plain values, a schema as its dict) and the synthgate version.

    The version is in every key: another version may fit, choose or publish differently from the same inputs.
    """
    described = jsonable({**parts, "synthgate": metadata.version("synthgate")})
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def model_key(rows: str, schema: Schema, name: str, params: Mapping[str, Any], seed: int, device: str) -> str:
    """The key of a fitted model: its rows' digest, schema, generator, full params (defaults included), seed, device."""
    return digest(rows=rows, schema=schema.to_dict(), generator=name, params=dict(params), seed=seed,
                     device=device)


class ModelCache:
    """One dataset's cache of fitted models and `auto` selections (see the module's note)."""

    def __init__(self, out: Path, dataset: str) -> None:
        """The cache of `dataset` under the releases root `out` (nothing is created until a store)."""
        self.root = dataset_folder(out, dataset) / MODELS

    def model_path(self, key: str) -> Path:
        """Where the model of `key` is (or would be) stored."""
        return self.root / key / MODEL_FILE

    def load_model(self, key: str) -> Generator | None:
        """The cached model of `key`, or None when there is none or it cannot be read (a warning says why)."""
        path = self.model_path(key)
        if not path.is_file():
            return None
        try:
            model = registry.load(path)
        except Exception as err:  # a torn file fails wherever torch's reader stops: any failure is a miss
            log.warning("ignoring the unreadable cached model %s (%s); fitting again", path, err)
            return None
        _touch(path.parent)
        return model

    def store_model(self, key: str, model: Generator) -> None:
        """Cache `model` under `key` (replacing what was there), then keep only the newest entries."""
        self._store(key, MODEL_FILE, model.save)

    def load_record(self, key: str) -> dict[str, Any] | None:
        """The JSON record cached under `key` (`auto`'s selection), or None when missing or unreadable."""
        path = self.root / key / SELECTION_FILE
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            log.warning("ignoring the unreadable cached selection %s (%s); choosing again", path, err)
            return None
        if not isinstance(record, dict):
            log.warning("ignoring the cached selection %s: not a mapping; choosing again", path)
            return None
        _touch(path.parent)
        return record

    def store_record(self, key: str, record: Mapping[str, Any]) -> None:
        """Cache a JSON record (`auto`'s selection) under `key`, then keep only the newest entries."""
        text = json.dumps(jsonable(record), sort_keys=True)
        self._store(key, SELECTION_FILE, lambda path: Path(path).write_text(text, encoding="utf-8"))

    def entries(self) -> list[Path]:
        """The cache's entries, newest (last stored or reused) first."""
        if not self.root.is_dir():
            return []
        found = [entry for entry in self.root.iterdir() if entry.is_dir() and not entry.name.startswith(".")]
        return sorted(found, key=_used_at, reverse=True)

    def _store(self, key: str, name: str, write: Callable[[Path], object]) -> None:
        """Write `name` of entry `key` whole: a temp file in the entry, fsynced, renamed over the old one.

        A disk that refuses the write costs the cache entry only (a warning): the run goes on with its model.
        """
        entry = self.root / key
        temp = entry / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            entry.mkdir(parents=True, exist_ok=True)
            write(temp)
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, entry / name)
        except OSError as err:
            temp.unlink(missing_ok=True)
            log.warning("could not cache %s in %s (%s); the next run fits again", name, entry, err)
            return
        _touch(entry)
        self._evict()

    def _evict(self) -> None:
        """Remove all but the newest `KEEP` entries."""
        for stale in self.entries()[KEEP:]:
            log.info("removing the cached entry %s (the cache keeps the newest %d)", stale.name, KEEP)
            shutil.rmtree(stale, ignore_errors=True)


def _touch(entry: Path) -> None:
    """Mark an entry as just used, so eviction keeps it."""
    now = time.time_ns()  # explicit: the kernel's own stamp is coarse enough for two stores to tie
    try:
        os.utime(entry, ns=(now, now))
    except OSError as err:
        log.warning("could not mark the cached entry %s as used (%s)", entry, err)


def _used_at(entry: Path) -> int:
    """When an entry was last stored or reused; one removed meanwhile counts as oldest."""
    try:
        return entry.stat().st_mtime_ns
    except FileNotFoundError:
        return 0
