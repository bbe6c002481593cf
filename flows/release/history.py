"""A dataset's releases over time: what there is, moving `CURRENT` back to an earlier release, retention.

Listing only reads, so it takes no lock: publishing and retention make each folder appear or disappear in one
rename. Rolling back and retention take the dataset's lock, like a run, and leave a line in history.jsonl
(`flows.release.publish.record_event`). A release whose manifest cannot be read is listed as damaged: it is
never the target of a rollback, and the listing still shows everything else.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from flows.release.manifest import Manifest, jsonable
from flows.release.publish import (
    MANIFEST,
    REFUSED,
    RELEASES,
    dataset_folder,
    dataset_lock,
    newest_first,
    read_current,
    record_event,
    retain,
    write_current,
)
from generators.tabular.errors import BadInputError

log = logging.getLogger(__name__)

Outcome = Literal["published", "refused", "damaged"]
_IDS_SHOWN = 10  # valid ids named in a refused rollback's message; `synthgate releases` lists them all


@dataclass(frozen=True)
class ReleaseEntry:
    """One release or refused run as listed: its manifest's headline, or why it could not be read (`damaged`)."""

    id: str
    verdict: Outcome
    path: Path
    current: bool = False
    created_at: str | None = None
    generator: str | None = None
    quality: float | None = None
    rows: int | None = None
    damaged: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as `synthgate releases --json` prints it: plain JSON values, the path as text."""
        return dict(jsonable(asdict(self)))


@dataclass(frozen=True)
class Rollback:
    """`CURRENT` of `dataset` before (`previous`) and after (`current`) a rollback."""

    dataset: str
    previous: str | None
    current: str

    @property
    def changed(self) -> bool:
        """False when the release asked for was already `CURRENT`: nothing was written."""
        return self.previous != self.current


def list_releases(out: Path, dataset: str) -> list[ReleaseEntry]:
    """Every release and refused run of `dataset` under `out`, newest first, `CURRENT`'s marked."""
    dataset_dir = _existing(out, dataset)
    current = read_current(out, dataset)
    folders = [(folder, kind) for kind in (RELEASES, REFUSED) for folder in newest_first(dataset_dir / kind)]
    entries = (_entry(folder, refused=kind == REFUSED, current=current) for folder, kind in folders)
    return sorted((entry for entry in entries if entry is not None), key=lambda entry: entry.id, reverse=True)


def rollback(out: Path, dataset: str, release_id: str, reason: str | None = None) -> Rollback:
    """Point `CURRENT` at an earlier published release and record it in history.jsonl.

    The release must be there and its manifest must say the gate passed; to the one already `CURRENT` it writes
    nothing.
    """
    dataset_dir = _existing(out, dataset)
    with dataset_lock(dataset_dir):
        entries = list_releases(out, dataset)
        previous = read_current(out, dataset)
        _check_target(dataset, release_id, entries)
        if release_id == previous:
            log.info("%s is already CURRENT of %s: nothing to roll back", release_id, dataset)
            return Rollback(dataset, previous, release_id)
        write_current(dataset_dir, release_id)
        record_event(dataset_dir, "rollback", release_id, previous, reason)
    log.info("rolled %s back from %s to %s", dataset, previous, release_id)
    return Rollback(dataset, previous, release_id)


def apply_retention(out: Path, dataset: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` releases and refusals of `dataset`, never `CURRENT`'s; returns what went.

    As `publish_release(..., keep=keep)` does after publishing (see `flows.release.publish.retain`).
    """
    dataset_dir = _existing(out, dataset)
    with dataset_lock(dataset_dir):
        return retain(dataset_dir, keep)


def _existing(out: Path, dataset: str) -> Path:
    """The dataset's folder, or a one-line refusal that names the datasets there are."""
    dataset_dir = dataset_folder(out, dataset)
    if dataset_dir.is_dir():
        return dataset_dir
    if not Path(out).is_dir():
        raise BadInputError(f"no dataset {dataset!r}: {out} is not a folder of releases")
    there = sorted(p.name for p in Path(out).iterdir() if p.is_dir() and not p.name.startswith("."))
    raise BadInputError(f"no dataset {dataset!r} under {out}; "
                        + (f"datasets there: {', '.join(there)}" if there else "it holds no dataset"))


def _entry(folder: Path, *, refused: bool, current: str | None) -> ReleaseEntry | None:
    """The folder's listing from its manifest; None when retention took it away while we looked."""
    try:
        manifest = Manifest.from_json((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        if not folder.exists():
            return None
        problem = f"{MANIFEST} unreadable: {type(err).__name__}: {err}".splitlines()[0]
        return ReleaseEntry(folder.name, "damaged", folder, damaged=problem)
    return ReleaseEntry(
        id=folder.name,
        verdict="refused" if refused or not manifest.passed else "published",
        path=folder,
        current=not refused and folder.name == current,
        created_at=manifest.created_at or None,
        generator=manifest.generator.name if manifest.generator is not None else None,
        quality=manifest.metrics.fidelity.quality,
        rows=manifest.rows,
    )


def _check_target(dataset: str, release_id: str, entries: list[ReleaseEntry]) -> None:
    """Refuse, in one line that lists the valid ids, a rollback to anything but a published release."""
    valid = [entry.id for entry in entries if entry.verdict == "published"]
    if release_id in valid:
        return
    shown = ", ".join(valid[:_IDS_SHOWN]) + (f" and {len(valid) - _IDS_SHOWN} older" if len(valid) > _IDS_SHOWN
                                              else "")
    found = {entry.id: entry for entry in entries}.get(release_id)
    if found is None:
        why = f"{dataset} has no release {release_id!r}"
    elif found.verdict == "refused":
        why = f"{release_id} was refused by the gate, so it cannot become CURRENT"
    else:
        why = f"release {release_id} is damaged: {found.damaged}"
    raise BadInputError(f"{why}; published releases: {shown or 'none'}")
