"""Publishing: a release appears whole under `releases/` or not at all, and `CURRENT` moves last.

Everything is written into `OUT/<dataset>/.staging/`, fsynced, then moved into place with one
`os.rename`; `CURRENT` is replaced atomically afterwards. A crash at any moment therefore leaves the
previous release and `CURRENT` intact; its leftovers (staging folders, `CURRENT` temp files) are removed
by the next run. An exclusive `flock` on `OUT/<dataset>/.lock` serialises runs of the same dataset, so
one run never cleans away another's staging. Nothing already published is modified; a release is deleted
only by retention (`keep`), never the one `CURRENT` names nor the newest, and whole: renamed into `.staging/`
first, so a crash leaves it either in place or out of sight, for the next run to remove.

Every move of `CURRENT` and every deletion is a line of `OUT/<dataset>/history.jsonl`, appended and fsynced
with the lock held: time, action (published, rollback, retention), release_id, the previous `CURRENT`, reason.

`synthgate evaluate` publishes its output folder the same way, staged beside it (in `.<name>.synthgate/`,
which also holds its lock) and then exchanged with the previous evaluation there in one atomic
`renameat2(RENAME_EXCHANGE)`: readers see the old folder or the new one whole, never a mix of the two.

A full disk, an exhausted quota, a read-only or forbidden folder are the user's to fix, not our bug: they end
in a one-line `StorageError` (exit 2), raised after the staging folder is removed.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flows.release.manifest import EXPECTATIONS_DOCS, FileRecord, GeneratorRecord, Manifest, jsonable
from generators.tabular.errors import BadInputError
from generators.tabular.inference import conform_column
from generators.tabular.schema import ColumnSpec

log = logging.getLogger(__name__)

RELEASES = "releases"
REFUSED = "refused"
CURRENT = "CURRENT"
HISTORY = "history.jsonl"
STAGING = ".staging"
LOCK = ".lock"
MANIFEST = "manifest.json"
REPORT = "report.html"
DATA = "data"
PROFILES = ".profiles"  # OUT/<dataset>/.profiles/<release_id>.npz: a release's private source profile (drift)
PARQUET_COMPRESSION = "zstd"
# Keys of the provenance stored in every parquet file's schema metadata.
META_RELEASE_ID = b"synthgate.release_id"
META_GENERATOR = b"synthgate.generator"
META_SOURCE_SHA256 = b"synthgate.source_sha256"

_CURRENT_TMP_PREFIX = f".{CURRENT}."
_CURRENT_TMP_SUFFIX = ".tmp"
# Dataset names and ids become folder names: no separators, no leading dot (reserved for our own files).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
# An evaluation folder holds these and nothing else; its staging and lock live in `.<name>.synthgate/` beside it.
_EVALUATION = frozenset({MANIFEST, REPORT, EXPECTATIONS_DOCS})
_EVALUATION_HOME = ".synthgate"
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>

Attachment = tuple[str, Callable[[Path], None]]  # a file's path in a release, and the writer that makes it
Action = Literal["published", "rollback", "retention"]  # what a line of history.jsonl records


class StorageError(BadInputError):
    """The output folder cannot take the release (full, over quota, read-only, forbidden): one line, exit 2."""


def read_conformed(path: Path, specs: Iterable[ColumnSpec]) -> pd.DataFrame:
    """Rows this package wrote as Parquet (a file, or a folder of parts) with each of `specs` read as its kind.

    Parquet keeps the values written, not pandas' readings of them (datetimes written as text, categories
    as strings), so every reader of staged chunks, shards and releases conforms them the same way.
    """
    frame = pq.read_table(path).to_pandas()
    return frame.assign(**{spec.name: conform_column(frame[spec.name], spec.kind) for spec in specs
                           if spec.name in frame})


def check_writable(out_dir: Path, dataset: str) -> None:
    """Refuse, before any work, an output that cannot hold the dataset's folder.

    That is a file in the way, or a folder this user may not write into (root may write anywhere, so only the disk
    itself can refuse it).
    """
    _check_writable(dataset_folder(out_dir, dataset), f"cannot write releases under {out_dir}")


def _check_writable(target: Path, refusal: str) -> None:
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise StorageError(f"{refusal}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StorageError(f"{refusal}: {existing} is not writable")


def new_run_id(now: datetime | None = None) -> str:
    """A UTC timestamp plus a random suffix: sorts by time, never collides, safe as a folder name.

    A naive `now` is taken to be UTC.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large parts never sit in memory."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def dataset_folder(out_dir: Path, dataset: str) -> Path:
    """`OUT/<dataset>`, the folder of one dataset's releases, refusals, `CURRENT`, lock and history."""
    return Path(out_dir) / _safe(dataset, "dataset")


def read_current(out_dir: Path, dataset: str) -> str | None:
    """The release_id `CURRENT` points to, or None before the first release."""
    return _current(dataset_folder(out_dir, dataset))


def profile_path(dataset_dir: Path, release_id: str) -> Path:
    """Where a release's private source profile lives: beside the releases, never inside one (it is not shared)."""
    return dataset_dir / PROFILES / f"{_safe(release_id, 'release_id')}.npz"


def clean_stale(out_dir: Path, dataset: str) -> list[Path]:
    """Remove what killed runs left behind (staging folders, `CURRENT` temp files); returns what went."""
    dataset_dir = dataset_folder(out_dir, dataset)
    with dataset_lock(dataset_dir):
        return _clean_stale_locked(dataset_dir)


def publish_release(
    out_dir: Path,
    dataset: str,
    release_id: str,
    synthetic: pd.DataFrame | Sequence[Path],
    manifest: Manifest,
    render_report: Callable[[Manifest], str],
    *,
    model: Attachment | None = None,
    folders: Mapping[str, Path] | None = None,
    on_commit: Callable[[], None] | None = None,
    profile: Callable[[Path], None] | None = None,
    rows_per_part: int = 500_000,
    keep: int | None = None,
) -> Path:
    """Write a release (parquet parts, manifest.json, report.html) atomically and point `CURRENT` at it.

    `synthetic`: the rows, or the Parquet parts a sharded sampling wrote already (`flows.shards`, provenance
    included), which are moved into the release as they are.

    `model`: (path in the release, writer of that file), the trained model, which lands in the manifest as
    `model {path, sha256}`. `folders` maps a path in the release to a folder copied there whole (GX's
    Data Docs). `on_commit` runs with the dataset's lock held, before anything is written (the privacy
    ledger records the release there: a crash after it over-counts the budget, never under-counts it).
    `profile`: the writer of the release's private source profile (at `profile_path`), run with the lock held
    once `CURRENT` names the release; the release stands if it fails, only the next run's drift is not measured.
    The manifest is written with `release_id`, `dataset`, `rows`, `files` and `model`; history.jsonl gets a
    `published` line once `CURRENT` names it. `keep`: then, in the same lock, `retain` the newest `keep`
    releases and refusals (None keeps all). Returns the release folder.
    """
    if rows_per_part < 1:
        raise ValueError(f"rows_per_part must be at least 1, got {rows_per_part}")
    _check_keep(keep)
    if not manifest.passed:
        raise ValueError("refusing to publish: the manifest's gate did not pass (use record_refusal)")
    dataset_dir = dataset_folder(out_dir, dataset)
    final = dataset_dir / RELEASES / _safe(release_id, "release_id")
    released = manifest.released(release_id, dataset)

    def fill(staging: Path) -> None:
        files = (_write_parts(staging, synthetic, released, rows_per_part) if isinstance(synthetic, pd.DataFrame)
                 else _move_parts(staging, synthetic))
        attached = _attach(staging, *model) if model is not None else None
        _copy_folders(staging, folders or {})
        _write_manifest_and_report(staging, replace(released, rows=sum(f.rows or 0 for f in files), files=files,
                                                    model=attached),
                                   render_report)

    with _storage_errors(dataset_dir, "publish"), dataset_lock(dataset_dir):
        _clean_stale_locked(dataset_dir)
        if on_commit is not None:
            on_commit()
        _publish_folder(dataset_dir, final, fill)
        previous = _current(dataset_dir)
        write_current(dataset_dir, release_id)
        record_event(dataset_dir, "published", release_id, previous)
        if profile is not None:
            _write_profile(dataset_dir, release_id, profile)
        if keep is not None:
            retain(dataset_dir, keep)
    log.info("published %s release %s at %s", dataset, release_id, final)
    return final


def _write_profile(dataset_dir: Path, release_id: str, write: Callable[[Path], None]) -> None:
    """Write a published release's profile; a disk that refuses it costs the next run its drift, not the release."""
    try:
        write(profile_path(dataset_dir, release_id))
    except OSError as err:
        log.warning("cannot write the source profile of %s (%s): the next release will show no drift",
                    release_id, err)


def record_refusal(
    out_dir: Path,
    dataset: str,
    run_id: str,
    manifest: Manifest,
    render_report: Callable[[Manifest], str],
    *,
    folders: Mapping[str, Path] | None = None,
    keep: int | None = None,
) -> Path:
    """Keep the manifest and report of a refused run under `refused/<run_id>/`; no synthetic data.

    `folders` and `keep` as for `publish_release`: a schedule that keeps refusing must not pile refusals up.
    """
    _check_keep(keep)
    dataset_dir = dataset_folder(out_dir, dataset)
    final = dataset_dir / REFUSED / _safe(run_id, "run_id")
    refused = manifest.refused(run_id, dataset)

    def fill(staging: Path) -> None:
        _copy_folders(staging, folders or {})
        _write_manifest_and_report(staging, refused, render_report)

    with _storage_errors(dataset_dir, "record the refusal"), dataset_lock(dataset_dir):
        _clean_stale_locked(dataset_dir)
        _publish_folder(dataset_dir, final, fill)
        if keep is not None:
            retain(dataset_dir, keep)
    log.warning("refused %s run %s; manifest and report kept at %s", dataset, run_id, final)
    return final


def check_evaluation_folder(out: Path) -> None:
    """Refuse, before any work, an output folder `evaluate` cannot replace.

    That is a file, a folder that holds more than an evaluation (replacing it would delete the rest), or one this
    user may not write beside.
    """
    out = _absolute(out)
    if out.exists() and (not out.is_dir() or any(entry.name not in _EVALUATION for entry in out.iterdir())):
        raise StorageError(f"cannot write the evaluation to {out}: it holds other files than an evaluation's "
                           f"({', '.join(sorted(_EVALUATION))}); choose a new or empty folder")
    _check_writable(out.parent, f"cannot write the evaluation to {out}")


def publish_evaluation(
    out: Path,
    manifest: Manifest,
    render_report: Callable[[Manifest], str],
    *,
    folders: Mapping[str, Path] | None = None,
) -> Path:
    """Write an evaluation's manifest, report and `folders` (GX's Data Docs) as the folder `out`; return `out`.

    It replaces the previous evaluation there in one atomic exchange (see the module's note).
    """
    check_evaluation_folder(out)
    out = _absolute(out)
    home = out.parent / f".{out.name}{_EVALUATION_HOME}"

    def fill(staging: Path) -> None:
        _copy_folders(staging, folders or {})
        _write_manifest_and_report(staging, manifest, render_report)

    with _storage_errors(home, "write the evaluation"), dataset_lock(home):
        _clean_stale_locked(home)
        _publish_folder(home, out, fill, replacing=True)
    log.info("evaluation %s written to %s", "passed" if manifest.passed else "refused", out)
    return out


def _absolute(path: Path) -> Path:
    """`path` made absolute without resolving links, so `.` has a name and a parent."""
    return Path(os.path.abspath(path))


def _safe(name: str, what: str) -> str:
    """Names become path components: refuse anything that could escape or clash with our own files."""
    if not _SAFE_NAME.fullmatch(name):
        raise BadInputError(f"{what} {name!r} must be letters, digits, '.', '_' or '-', not starting with '.'")
    return name


@contextmanager
def _storage_errors(dataset_dir: Path, action: str) -> Iterator[None]:
    """The disk refusing a write, as one line that says which folder and why.

    The writers below have already removed what they staged.
    """
    try:
        yield
    except OSError as err:
        if err.errno not in _STORAGE_ERRNOS:
            raise
        raise StorageError(f"cannot {action} in {dataset_dir}: {os.strerror(err.errno)}") from None


@contextmanager
def dataset_lock(dataset_dir: Path) -> Iterator[None]:
    """Exclusive lock per dataset; the kernel drops it when the holder dies, so a kill never wedges it."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    with open(dataset_dir / LOCK, "a") as handle:  # never deleted: deleting lock files races
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another run to finish publishing in %s", dataset_dir)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _clean_stale_locked(dataset_dir: Path) -> list[Path]:
    """With the lock held, any staging folder or `CURRENT` temp file belongs to a dead run."""
    staging_root = dataset_dir / STAGING
    stale = sorted(staging_root.iterdir()) if staging_root.is_dir() else []
    stale += sorted(dataset_dir.glob(f"{_CURRENT_TMP_PREFIX}*{_CURRENT_TMP_SUFFIX}"))
    for path in stale:
        log.warning("removing leftover of an interrupted run: %s", path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return stale


def newest_first(folder: Path) -> list[Path]:
    """The releases (or refusals) in `folder`, newest first: ids from `new_run_id` sort by time.

    Hidden entries, files and links are not releases; a missing folder holds none.
    """
    if not folder.is_dir():
        return []
    found = (entry for entry in folder.iterdir()
             if not entry.name.startswith(".") and entry.is_dir() and not entry.is_symlink())
    return sorted(found, key=lambda entry: entry.name, reverse=True)


def record_event(dataset_dir: Path, action: Action, release_id: str, previous: str | None,
                 reason: str | None = None) -> None:
    """Append one line to the dataset's history.jsonl and fsync it; call with the dataset's lock held.

    The log is only ever appended to. A line torn by a crash is closed first, so the lines after it still parse.
    """
    event = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "action": action, "release_id": release_id,
             "previous": previous, "reason": reason}
    path = dataset_dir / HISTORY
    created = not path.exists()
    with open(path, "a+b") as handle:  # appends, and reads the last byte
        size = os.fstat(handle.fileno()).st_size
        torn = size > 0 and os.pread(handle.fileno(), 1, size - 1) != b"\n"
        handle.write((b"\n" if torn else b"") + json.dumps(event).encode("utf-8") + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        _fsync_dir(dataset_dir)


def retain(dataset_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` releases and refusals, never `CURRENT`'s; call with the dataset's lock held.

    After a rollback `CURRENT` may name an old release: it stays, beside the `keep` newest. Each deletion is a
    `retention` line of history.jsonl; a deleted release's private source profile goes with it. Returns the
    folders deleted.
    """
    _check_keep(keep)
    current = _current(dataset_dir)
    deleted = []
    for kind, what in ((RELEASES, "release"), (REFUSED, "refused run")):
        for folder in newest_first(dataset_dir / kind)[keep:]:
            if kind == RELEASES and folder.name == current:
                continue
            trash = _out_of_sight(dataset_dir, folder)
            record_event(dataset_dir, "retention", folder.name, current, f"{what} older than the newest {keep}")
            if kind == RELEASES:  # a profile never outlives its release
                profile_path(dataset_dir, folder.name).unlink(missing_ok=True)
            shutil.rmtree(trash)
            _fsync_dir(trash.parent)
            deleted.append(folder)
    if deleted:
        log.info("retention (keep %d) deleted %s", keep, ", ".join(f"{p.parent.name}/{p.name}" for p in deleted))
    return deleted


def _out_of_sight(dataset_dir: Path, folder: Path) -> Path:
    """Move `folder` into `.staging/` in one durable rename, so that deleting it is never seen half done.

    A crash before the rename leaves the folder whole; after it, a leftover that the next run cleans away.
    """
    trash = dataset_dir / STAGING / f"deleted-{folder.parent.name}-{folder.name}"
    trash.parent.mkdir(exist_ok=True)
    os.rename(folder, trash)
    _fsync_dir(folder.parent)
    _fsync_dir(trash.parent)
    return trash


def _check_keep(keep: int | None) -> None:
    if keep is not None and keep < 1:
        raise BadInputError(f"keep must be at least 1 (the newest release is always kept), got {keep}")


def _current(dataset_dir: Path) -> str | None:
    try:
        text = (dataset_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def _publish_folder(dataset_dir: Path, final: Path, fill: Callable[[Path], None], *, replacing: bool = False
                    ) -> None:
    """Fill a staging folder, make it durable, then make it visible at `final` with one rename.

    With `replacing`, a folder already at `final` is exchanged with it atomically, then removed.
    """
    if final.exists() and not replacing:
        raise BadInputError(f"{final.relative_to(dataset_dir)} already exists in {dataset_dir}; ids are never reused")
    staging = dataset_dir / STAGING / f"{final.parent.name}-{final.name}"
    staging.mkdir(parents=True)
    try:
        fill(staging)
        for folder in sorted(p for p in staging.rglob("*") if p.is_dir()):
            _fsync_dir(folder)
        _fsync_dir(staging)
        final.parent.mkdir(exist_ok=True)
        _fsync_dir(dataset_dir)
        if final.exists():
            _exchange(staging, final)
        else:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(final.parent)
    _remove(staging)  # after an exchange, the previous folder
    _fsync_dir(staging.parent)


def _exchange(first: Path, second: Path) -> None:
    """Swap two paths in one atomic step: Linux's `renameat2(RENAME_EXCHANGE)` (3.15 and later, on local filesystems).

    Where it is missing, refuse rather than replace the folder in two visible steps.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None or renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                                      _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno() if renameat2 is not None else errno.ENOSYS
        if code in (errno.ENOSYS, errno.EINVAL):
            raise StorageError(f"cannot replace {second} atomically on this system or filesystem; "
                               "choose a new folder") from None
        raise OSError(code, os.strerror(code), str(second))


def _remove(path: Path) -> None:
    """Remove a staging folder, or what an exchange put there (a folder, or a link to one: never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def provenance(release_id: str, generator: GeneratorRecord, source_sha256: str) -> dict[bytes, bytes]:
    """What every published part carries in its schema metadata: the release, its generator and its source."""
    return {
        META_RELEASE_ID: release_id.encode(),
        META_GENERATOR: json.dumps(jsonable(generator.to_dict()), sort_keys=True).encode(),
        META_SOURCE_SHA256: source_sha256.encode(),
    }


def _write_parts(staging: Path, frame: pd.DataFrame, manifest: Manifest, rows_per_part: int) -> tuple[FileRecord, ...]:
    """Zstd parquet parts carrying provenance in their schema metadata; returns the manifest's `files`."""
    if manifest.generator is None or manifest.source is None:
        raise ValueError("a release's manifest names its generator and its source")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           **provenance(str(manifest.release_id), manifest.generator,
                                                        manifest.source.sha256)})
    (staging / DATA).mkdir()
    files = []
    # An empty frame still gets one part, so its columns and dtypes are published.
    for index, start in enumerate(range(0, max(table.num_rows, 1), rows_per_part)):
        part = table.slice(start, rows_per_part)
        relative = f"{DATA}/part-{index:05d}.parquet"
        _write_durably(staging / relative, partial(pq.write_table, part, compression=PARQUET_COMPRESSION))
        files.append(FileRecord(relative, sha256_file(staging / relative), part.num_rows))
    return tuple(files)


def _move_parts(staging: Path, parts: Sequence[Path]) -> tuple[FileRecord, ...]:
    """Parts written already, moved into the release's data folder in order, made durable and fingerprinted."""
    (staging / DATA).mkdir()
    files = []
    for index, part in enumerate(parts):
        relative = f"{DATA}/part-{index:05d}.parquet"
        shutil.move(part, staging / relative)
        with open(staging / relative, "rb") as f:
            os.fsync(f.fileno())
        files.append(FileRecord(relative, sha256_file(staging / relative),
                                pq.ParquetFile(staging / relative).metadata.num_rows))
    return tuple(files)


def _attach(staging: Path, relative: str, write: Callable[[Path], None]) -> FileRecord:
    """A file written by someone else's writer, made durable and fingerprinted like the parts."""
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise ValueError(f"attachment path must stay inside the release: {relative}")
    path = staging / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    return FileRecord(relative, sha256_file(path))


def _copy_folders(staging: Path, folders: Mapping[str, Path]) -> None:
    """Copy each folder into the release at its path, every file fsynced (folders are fsynced later)."""
    for relative, source in folders.items():
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise ValueError(f"folder path must stay inside the release: {relative}")
        shutil.copytree(source, staging / relative)
        for path in (staging / relative).rglob("*"):
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())


def _write_manifest_and_report(staging: Path, manifest: Manifest, render_report: Callable[[Manifest], str]) -> None:
    """The report is rendered from exactly what manifest.json holds, so the two never disagree."""
    text = manifest.to_json()
    _write_durably(staging / MANIFEST, lambda f: f.write(text.encode("utf-8")))
    page = render_report(Manifest.from_json(text))
    _write_durably(staging / REPORT, lambda f: f.write(page.encode("utf-8")))


def write_current(dataset_dir: Path, release_id: str) -> None:
    """Swap `CURRENT` in one `os.replace`: readers see the old id or the new one, never a torn file."""
    tmp = dataset_dir / f"{_CURRENT_TMP_PREFIX}{secrets.token_hex(4)}{_CURRENT_TMP_SUFFIX}"
    try:
        _write_durably(tmp, lambda f: f.write(release_id.encode("utf-8")))
        os.replace(tmp, dataset_dir / CURRENT)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dataset_dir)


def replace_file(path: Path, text: str) -> None:
    """Replace `path` with `text` whole (UTF-8), as `replace_durably` does."""
    replace_durably(path, lambda handle: handle.write(text.encode("utf-8")))


def replace_durably(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace `path` with what `write` writes: a temp file beside it, fsynced, renamed over it, the folder fsynced.

    Readers see the old content or the new one, never a torn file; a crash leaves the old one.
    """
    descriptor, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _write_durably(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create `path` (never overwrite), write it and fsync it before returning."""
    with open(path, "xb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries (new files, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
