"""Every step of the flows as a Prefect task: each one call into a plain function a test can call without Prefect.

The functions are `flows.steps`'s or the library's own.

Tasks neither persist results nor cache: the private frames they pass each other live only in memory. The tasks
that read or write files (`ingest`, `read`, `publish`) retry a transient failure of the disk or the network with
exponential backoff; bad input (`BadInputError`, and `StorageError`, a full or read-only disk: the user's to fix)
never retries, and neither do the steps that compute (a fit, a check), where a retry would only fail again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff

from flows.gate import judge
from flows.release.artifacts import publish_artifacts
from flows.release.drift import measure_drift
from flows.shards import sample_shard as sample_one_shard
from flows.sources.staging import assemble as assemble_staged
from flows.sources.staging import plan_ingest as plan_source_ingest
from flows.sources.staging import stage_part as stage_one_part
from flows.steps import (
    read_tables,
    release,
    select_generator,
    train_generator,
    unchanged_release,
    write_evaluation,
)
from generators.tabular.errors import BadInputError
from privacy.audit import audit_privacy
from validation.audit import audit_fidelity

P = ParamSpec("P")
R = TypeVar("R")

IO_RETRIES = 3
IO_BACKOFF_S = 2.0  # the first retry waits this long, each next one twice as long (2, 4, 8 s)


def private_task(fn: Callable[P, R], name: str) -> Task[P, R]:
    """A task over a library function whose inputs and outputs are never persisted nor cached."""
    return task(name=name, persist_result=False, cache_policy=NO_CACHE)(fn)


def io_task(fn: Callable[P, R], name: str) -> Task[P, R]:
    """A `private_task` over a function that reads or writes files: a transient failure retries, with backoff.

    Retrying is safe there: a publish that failed removed what it staged, and a release id is never reused.
    """
    return private_task(fn, name).with_options(retries=IO_RETRIES,
                                               retry_delay_seconds=exponential_backoff(IO_BACKOFF_S),
                                               retry_condition_fn=transient)


def transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Whether a failed run may succeed if tried again: an `OSError` that is not bad input.

    `BadInputError` (and its `StorageError`: a full, over-quota or read-only disk) will fail the same way again.
    """
    try:
        state.result()
    except Exception as err:  # the task's own exception, re-raised from its state
        return isinstance(err, OSError) and not isinstance(err, BadInputError)
    return False


plan_ingest = io_task(plan_source_ingest, "plan")
stage_part = io_task(stage_one_part, "ingest")
assemble = private_task(assemble_staged, "assemble")  # it removes the staged chunks it read: never retried
read = io_task(read_tables, "read")
unchanged = private_task(unchanged_release, "unchanged")
select = private_task(select_generator, "select")
train = private_task(train_generator, "train")
sample_shard = private_task(sample_one_shard, "sample")
validate = private_task(audit_fidelity, "validate")
check_privacy = private_task(audit_privacy, "privacy")
drift = private_task(measure_drift, "drift")
gate = private_task(judge, "gate")
report_artifacts = private_task(publish_artifacts, "artifacts")
publish = io_task(release, "publish")
publish_evaluation = io_task(write_evaluation, "publish")
