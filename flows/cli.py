"""The `synthgate` command line: thin commands over the flow and the library.

Exit codes: 0 published (or unchanged: the current release already has these rows and this config), 1 internal
failure, 2 bad input or config (one line on stderr), 3 refused by the gate, 130 interrupted by Ctrl-C (SIGINT), 143
stopped by SIGTERM (129 SIGHUP): 128 + the signal, as shells report it.
Unless `-v` is given, the terminal shows our own lines only: no library warning or log record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from flows import use_offline_defaults
from flows.config import AUTO_GENERATOR, RunConfig, load_config
from generators.tabular.errors import BadInputError
from generators.tabular.schema import Schema

if TYPE_CHECKING:
    from flows.gate import Verdict
    from flows.steps import RunOutcome

EXIT_PUBLISHED, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_REFUSED = 0, 1, 2, 3
EXIT_SIGNAL_BASE = 128  # exit code of a run stopped by a signal: 128 + its number (130 SIGINT, 143 SIGTERM)
OUR_LOGGERS = ("flows", "generators", "validation", "privacy")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_STOPS: list[int] = []  # the stop signals this process received, first first: a run stopped by one exits as stopped
# Unless -v: what keeps library noise off the terminal, here and in the processes we start (Prefect's server).
QUIET_ENVIRONMENT = {
    "PYTHONWARNINGS": "ignore",
    "PREFECT_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",  # whatever reaches Prefect's console handler
    "PREFECT_LOGGING_HANDLERS_DEBUG_LEVEL": "CRITICAL",
}

app = typer.Typer(
    name="synthgate",
    help="Gated synthetic releases of private tables.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stdout = Console()
stderr = Console(stderr=True)
log = logging.getLogger(__name__)

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show the orchestrator's logs and tracebacks.")]


@app.callback()
def start() -> None:
    """Before any command: the offline defaults (no telemetry, no result persistence).

    They are set while Prefect and Great Expectations are not yet imported (every command imports them lazily, if at
    all).
    """
    use_offline_defaults()


@app.command()
def run(
    source: Annotated[Path | None, typer.Option(help="CSV or Parquet file or folder [default: bundled Adult]")] = None,
    generator: Annotated[str | None, typer.Option(help="Generator name (see `synthgate generators`)")] = None,
    out: Annotated[Path | None, typer.Option(help="Releases root folder [default: releases]")] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name [default: the source's file name]")] = None,
    rows: Annotated[int | None, typer.Option(help="Synthetic rows [default: as many as the source]")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed [default: 0]")] = None,
    rebalance: Annotated[
        str | None, typer.Option(help="Give each value of this categorical column an equal share (augmentation)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with any of these settings and more")] = None,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="Fit again even when a model for these rows and config is cached")
    ] = False,
    dask: Annotated[
        str | None, typer.Option(help="Dask scheduler address (tcp://host:8786) to sample the shards on")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Train a generator on the source, validate the synthetic rows and publish them if every check passes."""
    with user_errors(verbose):
        settings = load_config(config, source=source, generator=generator, out=out, name=name, rows=rows, seed=seed,
                               rebalance=rebalance, retrain=retrain or None,  # None: the YAML's setting stands
                               dask=dask)
        outcome = run_flow(settings, verbose)
    show_outcome(outcome)
    raise typer.Exit(EXIT_PUBLISHED if outcome.passed else EXIT_REFUSED)


@app.command()
def evaluate(
    train: Annotated[Path, typer.Option(help="The real rows the synthetic table was made from (CSV or Parquet)")],
    holdout: Annotated[Path, typer.Option(help="Real rows from the same population, never used to make it")],
    synthetic: Annotated[Path, typer.Option(help="The synthetic table to judge, from synthgate or any tool")],
    target: Annotated[str | None, typer.Option(help="Target column for the utility check [default: inferred]")] = None,
    out: Annotated[Path, typer.Option(help="Folder for manifest.json, report.html and the Data Docs")] = Path(
        "evaluation"
    ),
    config: Annotated[Path | None, typer.Option(help="YAML with `gate:` thresholds, `columns:` overrides, `seed:`")]
    = None,
    verbose: Verbose = False,
) -> None:
    """Run the whole gate (fidelity and privacy) on three tables. Exit 0 pass, 3 refused, 2 bad input."""
    with user_errors(verbose):
        settings = load_config(config, target=target)
        outcome = evaluate_flow(train, holdout, synthetic, out, settings, verbose)
    show_outcome(outcome)
    raise typer.Exit(EXIT_PUBLISHED if outcome.passed else EXIT_REFUSED)


@app.command()
def inspect(
    source: Annotated[
        Path | None, typer.Argument(help="CSV or Parquet file or folder [default: the --config's source]")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML run config: its `columns:` overrides apply, its `source:` (a SQL one too) "
                                       "is read when no SOURCE is given")
    ] = None,
    as_yaml: Annotated[bool, typer.Option("--yaml", help="Print the kinds as YAML, ready to edit")] = False,
    verbose: Verbose = False,
) -> None:
    """Print the schema synthgate infers for a source (after any overrides in --config)."""
    from flows.sources import load_table

    with user_errors(verbose):
        settings = load_config(config, source=source)
        table = load_table(settings.source, settings.columns, settings.target, settings.na_values,
                           settings.public_domain)
    if as_yaml:
        kinds: dict[str, Any] = {"columns": {c.name: c.kind.value for c in table.schema}}
        stdout.print(yaml.safe_dump(kinds, sort_keys=False), end="", markup=False, highlight=False)
        return
    stdout.print(schema_table(table.schema, title=f"{table.source.uri}: {table.source.rows:,} rows"))
    show_dropped(table.source.dropped)


@app.command()
def score(
    model: Annotated[Path, typer.Option(help="A release folder (its model/generator.pt) or a model file")],
    source: Annotated[Path, typer.Option(help="CSV or Parquet rows to score")],
    out: Annotated[Path | None, typer.Option(help="Where to write rows + score (.csv or .parquet)")] = None,
    verbose: Verbose = False,
) -> None:
    """Score rows with a release's trained model: higher = more typical, the lowest are anomalies."""
    from flows.steps import score_source

    with user_errors(verbose):
        scored = score_source(model, source)
        target = out or source.with_name(f"{source.name.split('.')[0]}.scores.csv")
        if target.suffix.lower() in {".parquet", ".pq"}:
            scored.to_parquet(target, index=False)
        else:
            scored.to_csv(target, index=False)
    low = scored["score"].quantile(0.01)
    stdout.print(f"scored {len(scored):,} rows into {target} (1st percentile of score: {low:.4g})", soft_wrap=True)


@app.command()
def generators() -> None:
    """List the registered generators, and `auto`, which chooses one of them per table."""
    from flows.select import SUMMARY
    from generators.registry import describe

    default = RunConfig.model_fields["generator"].default
    listing = RichTable(show_header=True, header_style="bold", box=None)
    listing.add_column("name")
    listing.add_column("description")
    for key, summary in [*describe(), (AUTO_GENERATOR, SUMMARY)]:
        listing.add_row(key + (" (default)" if key == default else ""), summary)
    stdout.print(listing)


Out = Annotated[Path, typer.Option(help="Releases root folder")]


@app.command()
def releases(
    dataset: Annotated[str, typer.Argument(help="Dataset name (a folder under --out)")],
    out: Out = RunConfig.model_fields["out"].default,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON, for machines")] = False,
    verbose: Verbose = False,
) -> None:
    """List a dataset's releases and refused runs, newest first; CURRENT is marked."""
    from flows.release.history import list_releases
    from flows.release.manifest import shown

    with user_errors(verbose):
        entries = list_releases(out, dataset)
    if as_json:
        stdout.print_json(data=[entry.to_dict() for entry in entries])
        return
    if not entries:
        stdout.print(f"no releases or refused runs of {escape(dataset)} under {escape(str(out))}", soft_wrap=True,
                     highlight=False)
        return
    # 79 columns wide, so a pipe's 80 keeps each entry on one line; the CURRENT release (published) says so instead.
    listing = RichTable(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
    for column in ("id", "created (UTC)", "generator", "quality", "status", "rows"):
        listing.add_column(column, no_wrap=column != "generator", overflow="fold")
    colours = {"published": "green", "refused": "red", "damaged": "yellow"}
    for entry in entries:
        status = "[bold green]CURRENT[/]" if entry.current else f"[{colours[entry.verdict]}]{entry.verdict}[/]"
        listing.add_row(entry.id, escape(minutes_utc(entry.created_at)), escape(shown(entry.generator)),
                        shown(entry.quality), status, shown(entry.rows))
    stdout.print(listing)


@app.command()
def rollback(
    dataset: Annotated[str, typer.Argument(help="Dataset name (a folder under --out)")],
    release_id: Annotated[str, typer.Argument(help="A published release of the dataset (see `synthgate releases`)")],
    out: Out = RunConfig.model_fields["out"].default,
    reason: Annotated[str | None, typer.Option(help="Why, for the dataset's history.jsonl")] = None,
    verbose: Verbose = False,
) -> None:
    """Point the dataset's CURRENT at an earlier published release; the move is logged in history.jsonl."""
    from flows.release.history import rollback as roll_back

    with user_errors(verbose):
        moved = roll_back(out, dataset, release_id, reason)
    if moved.changed:
        stdout.print(f"CURRENT of {escape(dataset)}: {moved.previous or 'none'} -> {moved.current}", highlight=False)
    else:
        stdout.print(f"CURRENT of {escape(dataset)} is already {moved.current}; nothing changed", highlight=False)


ReleaseConfigs = Annotated[list[Path], typer.Argument(help="Release configs (YAML, as `run --config` takes)")]


@app.command()
def deploy(
    configs: ReleaseConfigs,
    pool: Annotated[str | None, typer.Option(help="Work pool of the releases [default: synthgate]")] = None,
    train_pool: Annotated[
        str | None, typer.Option(help="Work pool of `train_deployment` runs (GPU) [default: synthgate-gpu]")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Register each config's release (its schedule, one run at a time) and the training its configs name."""
    with user_errors(verbose):
        from flows.deploy import RELEASE_POOL, TRAIN_POOL, build_deployments, register

        settings = [load_config(path) for path in configs]
        registered = register(build_deployments(settings, pool or RELEASE_POOL, train_pool or TRAIN_POOL))
    for entry in registered:
        stdout.print(f"registered {escape(str(entry))}", soft_wrap=True, highlight=False)


@app.command()
def serve(configs: ReleaseConfigs, verbose: Verbose = False) -> None:
    """Run the same deployments from this process until stopped (no workers needed)."""
    with user_errors(verbose):
        from flows.deploy import build_deployments, serve_deployments

        serve_deployments(build_deployments([load_config(path) for path in configs], pool=None, train_pool=None))


def minutes_utc(stamp: str | None) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM` in UTC, short enough for a table row; anything else as it is."""
    try:
        return datetime.fromisoformat(stamp or "").astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp or "—"


def run_flow(settings: RunConfig, verbose: bool) -> RunOutcome:
    """Check the input before the orchestrator starts (bad input fails in a second), then run the flow."""
    from flows.steps import preflight

    preflight(settings)
    from flows.synthesize import synthesize

    with progress_from_logs(verbose):
        return synthesize(settings)


def evaluate_flow(train: Path, holdout: Path, synthetic: Path, out: Path, settings: RunConfig, verbose: bool
                  ) -> RunOutcome:
    """As `run_flow`, for the `evaluate` flow."""
    from flows.steps import check_evaluation

    check_evaluation(train, holdout, synthetic, out, settings)
    from flows.evaluate import evaluate

    with progress_from_logs(verbose):
        return evaluate(train, holdout, synthetic, out, settings)


def show_outcome(outcome: RunOutcome) -> None:
    """The verdict and where to find the release, the refusal or the evaluation; after a run's refusal, what to try.

    A run that found its release unchanged says so in one line: it wrote nothing.
    """
    from flows.release.report import refusal_advice

    manifest = outcome.manifest
    if outcome.unchanged:
        stdout.print(f"unchanged: {escape(manifest.dataset)} release {escape(manifest.name)} already has these rows "
                     "and this config", soft_wrap=True, highlight=False)
        return
    show_verdict(manifest.gate, manifest.outcome, outcome.path)
    advice = refusal_advice(manifest)
    if advice:
        stdout.print(escape(advice), soft_wrap=True, highlight=False)
    show_dropped(manifest.source.dropped if manifest.source is not None else {})


def show_dropped(dropped: dict[str, str]) -> None:
    """The source's columns left out of the model (and the release), so none goes missing unnoticed."""
    if dropped:
        listing = ", ".join(f"{name} ({why})" for name, why in dropped.items())
        stdout.print(f"dropped {len(dropped)} column(s) no model can learn: {escape(listing)}", soft_wrap=True)


def show_verdict(gate: Verdict, word: str, path: Path) -> None:
    """The verdict, the failed checks by name (or the headline checks when all passed), and the report."""
    from flows.release.manifest import shown

    colour = "green" if gate.passed else "red"
    stdout.print(f"[bold {colour}]{word}[/] {path}  (report: {path / 'report.html'})", soft_wrap=True)
    listed = gate.failed or [c for c in gate.checks if "[" not in c.name]
    checks = RichTable(box=None, header_style="bold")
    for column in ("check", "value", "threshold", "verdict"):
        checks.add_column(column)
    for check in listed:
        mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        checks.add_row(escape(check.name), shown(check.value), f"{check.comparison} {shown(check.threshold)}", mark)
    stdout.print(checks)
    stdout.print(f"{len(gate.checks) - len(gate.failed)} of {len(gate.checks)} checks passed", highlight=False)


def schema_table(schema: Schema, title: str) -> RichTable:
    """The schema as `inspect` prints it: each column's kind, dtype, nullability and the facts inferred for it."""
    listing = RichTable(title=title, header_style="bold")
    for column in ("column", "kind", "dtype", "nullable", "facts"):
        listing.add_column(column)
    for spec in schema:
        facts = []
        if spec.categories is not None:
            facts.append(f"{len(spec.categories)} categories")
        if spec.bounds is not None and spec.kind.value == "numerical":
            facts.append(f"[{spec.bounds[0]:g}, {spec.bounds[1]:g}]" + (" integer" if spec.integer else ""))
        if spec.timezone:
            facts.append(f"tz {spec.timezone}")
        if spec.pii_type:
            facts.append(spec.pii_type)
        if not spec.kind.is_learned:
            facts.append("regenerated, never learned")
        listing.add_row(spec.name, spec.kind.value, spec.dtype, "yes" if spec.nullable else "", ", ".join(facts))
    return listing


class Interrupted(KeyboardInterrupt):
    """A stop signal raised in the main thread as the KeyboardInterrupt it is treated like on the way out.

    No `except Exception` swallows it, and asyncio and Prefect's engine re-raise it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Every failure as one line on stderr and an exit code the caller can tell apart.

    Bad input: one line on stderr and exit 2. Anything else: one line and exit 1 (traceback with -v).
    Ctrl-C, SIGTERM or SIGHUP: one line and exit 128 + the signal, after the run has unwound.
    """
    try:
        with quiet_libraries(verbose), stopped_by_signals():
            yield
    except BadInputError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except typer.Exit:
        raise
    except KeyboardInterrupt as stop:
        signum = stop.signum if isinstance(stop, Interrupted) else signal.SIGINT
        typer.echo(f"error: interrupted ({signal.Signals(signum).name})", err=True)
        raise typer.Exit(EXIT_SIGNAL_BASE + signum) from None
    except Exception as err:
        if _STOPS:  # the stop, turned into another exception by a library on its way out (Prefect: a crashed run)
            typer.echo(f"error: interrupted ({signal.Signals(_STOPS[0]).name})", err=True)
            raise typer.Exit(EXIT_SIGNAL_BASE + _STOPS[0]) from None
        if verbose:
            raise
        log.debug("internal failure", exc_info=True)
        what = str(err).strip().splitlines()[0] if str(err).strip() else ""
        typer.echo(f"error: internal failure ({type(err).__name__}: {what}); rerun with -v for the traceback", err=True)
        raise typer.Exit(EXIT_INTERNAL) from None


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Ctrl-C, SIGTERM (a scheduler cancelling the run) and SIGHUP (its terminal closed) unwind the run.

    By default SIGTERM and SIGHUP kill the process on the spot: no `finally` runs, so a staging folder stays
    behind, and Prefect's ephemeral API server, a child process stopped only at interpreter exit, is
    orphaned. Raised as `Interrupted` instead, they let every cleanup run. Prefect's flow engine puts its
    own SIGTERM handler in front while a flow runs; it marks the run crashed and re-sends the signal to the
    handler it found, this one. SIGINT gets this handler too, so every stop takes the same way out (and
    no `asyncio.run` in a library can turn Ctrl-C into a task cancellation it might absorb: asyncio only
    does that while Python's own SIGINT handler is installed). A signal someone chose to ignore (`nohup`,
    a background job) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    defaults = (signal.SIG_DFL, signal.default_int_handler)
    saved = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS if signal.getsignal(sig) in defaults}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: object) -> None:
    _STOPS.append(signum)
    raise Interrupted(signum)


@contextlib.contextmanager
def quiet_libraries(verbose: bool) -> Iterator[None]:
    """Unless verbose, no warning or log record of a library reaches the terminal.

    That covers numpy, pandas, sklearn, sdmetrics, GX, torch, Prefect and the rest. Warnings are ignored here and in
    our child processes, Prefect's console handler (root's, once Prefect is imported) keeps to CRITICAL, and before
    that a silent handler on the root logger stands in for Python's last-resort one, which prints any WARNING to
    stderr.
    """
    if verbose:
        yield
        return
    saved = {key: os.environ.get(key) for key in QUIET_ENVIRONMENT}
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    root, silent = logging.getLogger(), logging.NullHandler()
    root.addHandler(silent)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeHandler(silent)
        for key, before in saved.items():
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before


@contextlib.contextmanager
def progress_from_logs(verbose: bool) -> Iterator[None]:
    """A spinner whose text follows our library's log lines, so long steps show what they are doing.

    It shows on a terminal only: elsewhere it would leave an empty line on stderr.

    Unless verbose, our records stop at the spinner (and Prefect's API handler, when one is attached)
    instead of also reaching the console through the root logger.
    """
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        line = progress.add_task("starting")
        handler = _ProgressHandler(lambda text: progress.update(line, description=text))
        loggers = [logging.getLogger(name) for name in OUR_LOGGERS]
        saved = [(lg.level, lg.propagate) for lg in loggers]
        for lg in loggers:
            lg.addHandler(handler)
            lg.setLevel(min(lg.getEffectiveLevel(), logging.INFO))
            lg.propagate = verbose
        try:
            yield
        finally:
            for lg, (level, propagate) in zip(loggers, saved, strict=True):
                lg.removeHandler(handler)
                lg.setLevel(level)
                lg.propagate = propagate


class _ProgressHandler(logging.Handler):
    def __init__(self, show: Any) -> None:
        super().__init__(logging.INFO)
        self._show = show

    def emit(self, record: logging.LogRecord) -> None:
        self._show(record.getMessage())


def main() -> None:
    """The `synthgate` console script (`[project.scripts]` in pyproject.toml)."""
    app()
