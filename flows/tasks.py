"""Every step of the flows as a Prefect task: each one call into a plain function a test can call without Prefect.

The functions are `flows.steps`'s or the library's own.

Tasks neither persist results nor cache: the private frames they pass each other live only in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from flows.gate import judge
from flows.release.artifacts import publish_artifacts
from flows.select import choose_generator
from flows.sources import load_table
from flows.split import split_holdout
from flows.steps import read_tables, release, sample_synthetic, train_generator, write_evaluation
from privacy.audit import audit_privacy
from validation.audit import audit_fidelity

P = ParamSpec("P")
R = TypeVar("R")


def private_task(fn: Callable[P, R], name: str) -> Task[P, R]:
    """A task over a library function whose inputs and outputs are never persisted nor cached."""
    return task(name=name, persist_result=False, cache_policy=NO_CACHE)(fn)


ingest = private_task(load_table, "ingest")
read = private_task(read_tables, "read")
split = private_task(split_holdout, "split")
select = private_task(choose_generator, "select")
train = private_task(train_generator, "train")
sample = private_task(sample_synthetic, "sample")
validate = private_task(audit_fidelity, "validate")
check_privacy = private_task(audit_privacy, "privacy")
gate = private_task(judge, "gate")
report_artifacts = private_task(publish_artifacts, "artifacts")
publish = private_task(release, "publish")
publish_evaluation = private_task(write_evaluation, "publish")
