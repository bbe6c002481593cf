"""Deployments: each dataset's release on a schedule, and the training on a GPU work pool.

`synthgate deploy` registers them on a Prefect server for workers to run; `synthgate serve` runs them in its own
process, for users without workers. Both build the same deployments here:

- one `synthesize/<dataset>` per release config, whose parameters are the validated config (source and out made
  absolute, since a worker runs elsewhere), with the config's cron schedule in its time zone, and at most one run at
  a time: a second run of the same dataset (the schedule firing while a manual run trains) is ENQUEUEd, it waits.
  It must not run beside the first: both would spend the GPU twice for one release, and a DP release judges its
  budget against a ledger the other run is about to change. Cancelling it instead (CANCEL_NEW) would drop a
  scheduled release without anyone asking for it.
- one `train/<name>` per `train_deployment` the configs name, on the train pool, one fit at a time (a GPU holds one
  model's training well; a second would share its memory). Only the names the configs use are registered, so a
  config never names a deployment that does not exist, and no pool is needed when none trains remotely.

The entrypoints are module paths (`flows.synthesize.synthesize`): a worker runs whatever synthgate is installed in
its environment (a process worker's virtualenv, a Docker or Kubernetes image), with no source folder of the
deploying machine baked in, no image built and nothing pushed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from prefect import serve
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from pydantic import ValidationError

from flows.config import RunConfig, describe_validation_error
from flows.handoff import split_deployment_name, train
from flows.synthesize import synthesize
from generators.tabular.errors import BadInputError

RELEASE_POOL, TRAIN_POOL = "synthgate", "synthgate-gpu"
ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    """One deployment as `synthgate deploy` reports it."""

    name: str
    pool: str
    schedule: str

    def __str__(self) -> str:
        return f"{self.name} on pool {self.pool} ({self.schedule}; one run at a time, others wait)"


def release_parameters(config: RunConfig) -> dict[str, object]:
    """The `synthesize` flow's parameters for `config`: the validated config in JSON, its paths absolute."""
    source = config.source.resolve() if isinstance(config.source, Path) else config.source  # a SQL source: its URL
    absolute = config.model_copy(update={"source": source, "out": config.out.resolve()})
    return {"config": absolute.model_dump(mode="json")}


def release_deployment(config: RunConfig, pool: str | None) -> RunnerDeployment:
    """The dataset's `synthesize/<dataset>` deployment (on `pool`, or served when None)."""
    schedules = None
    if config.schedule is not None:
        try:
            schedules = [CronSchedule(cron=config.schedule.cron, timezone=config.schedule.timezone)]
        except ValidationError as err:
            raise BadInputError(f"schedule of {config.dataset}: {describe_validation_error(err)}") from None
    # Called from synchronous code, Prefect's dual sync/async methods return the deployment itself.
    return cast(RunnerDeployment, synthesize.to_deployment(
        name=config.dataset, schedules=schedules, parameters=release_parameters(config),
        concurrency_limit=ONE_AT_A_TIME, work_pool_name=pool, entrypoint_type=EntrypointType.MODULE_PATH,
        description=f"Gated synthetic release of {config.dataset}", tags=["synthgate", "release"],
    ))


def train_deployment(deployment: str, pool: str | None) -> RunnerDeployment:
    """The `train/<name>` deployment a config's `train_deployment` names (on `pool`, or served when None)."""
    _, name = split_deployment_name(deployment)
    return cast(RunnerDeployment, train.to_deployment(
        name=name, concurrency_limit=ONE_AT_A_TIME, work_pool_name=pool, entrypoint_type=EntrypointType.MODULE_PATH,
        description="Fits a generator from a release's request, on the pool's GPU", tags=["synthgate", "train"],
    ))


def build_deployments(configs: Sequence[RunConfig], pool: str | None = RELEASE_POOL,
                      train_pool: str | None = TRAIN_POOL) -> list[RunnerDeployment]:
    """Every deployment the configs need: one release per dataset, one train per `train_deployment` named.

    Pools None: deployments to serve in this process (`prefect.serve`).
    """
    datasets = [config.dataset for config in configs]
    twice = sorted({name for name in datasets if datasets.count(name) > 1})
    if twice:
        raise BadInputError(f"two configs release the same dataset ({', '.join(twice)}): one deployment each")
    trains = sorted({config.train_deployment for config in configs if config.train_deployment is not None})
    return ([release_deployment(config, pool) for config in configs]
            + [train_deployment(name, train_pool) for name in trains])


def register(deployments: Iterable[RunnerDeployment]) -> list[Registered]:
    """Register the deployments on the Prefect server; what was registered.

    Every work pool is checked before anything is registered, so a missing one leaves no half-registered set.
    A missing pool is not created here: its type decides where training runs (a process pool on a machine without
    a GPU would train on its CPU), so that is the operator's choice, and the error says how to make it.
    """
    deployments = list(deployments)
    require_server("synthgate deploy")
    pools = sorted({d.work_pool_name for d in deployments if d.work_pool_name})
    with get_client(sync_client=True) as client:
        for pool in pools:
            try:
                client.read_work_pool(pool)
            except ObjectNotFound:
                raise BadInputError(f"work pool '{pool}' not found: create it first, e.g. "
                                    f"`prefect work-pool create {pool} --type process`") from None
    registered = []
    for deployment in deployments:
        deployment.apply()
        registered.append(Registered(f"{deployment.flow_name}/{deployment.name}", deployment.work_pool_name or "",
                                     describe_schedule(deployment)))
        log.info("registered %s", registered[-1])
    return registered


def serve_deployments(deployments: Sequence[RunnerDeployment]) -> None:
    """Run the deployments' schedules and triggered runs in this process until it is stopped."""
    require_server("synthgate serve")
    serve(*deployments, print_starting_message=False)


def describe_schedule(deployment: RunnerDeployment) -> str:
    """'cron <expr> <zone>', or 'no schedule' for a deployment that runs when asked."""
    crons = [f"cron '{s.schedule.cron}' {s.schedule.timezone or 'UTC'}" for s in deployment.schedules or []
             if isinstance(s.schedule, CronSchedule)]
    return ", ".join(crons) or "no schedule"


def require_server(command: str) -> None:
    """A one-line `BadInputError` unless a Prefect server is configured.

    Prefect's ephemeral API lives only as long as this process: a deployment there would be lost on exit.
    """
    if not PREFECT_API_URL.value():
        raise BadInputError(f"{command} needs a Prefect server: start one (`prefect server start`) and set "
                            "PREFECT_API_URL (`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`)")
