"""Retries: the tasks that touch files retry a transient OSError with backoff; bad input and computing steps never.

The engine tests run real Prefect tasks (with the flows' own retry policy) against a temporary Prefect server.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest
from prefect import Task
from prefect.states import Completed, Failed

from flows import tasks
from flows.release.publish import StorageError
from flows.tasks import IO_RETRIES, io_task, transient
from generators.tabular.errors import BadInputError


@pytest.mark.parametrize("error, retried", [
    (OSError(errno.EIO, "Input/output error"), True),
    (TimeoutError("the share did not answer"), True),
    (BadInputError("source not found: x.csv"), False),
    (StorageError("cannot publish in out/x: No space left on device"), False),
    (ValueError("a bug"), False),
])
def test_only_a_transient_os_error_is_retried(error: Exception, retried: bool) -> None:
    assert transient(tasks.stage_part, None, Failed(data=error)) is retried  # type: ignore[arg-type]


def test_a_completed_state_is_not_retried() -> None:
    assert transient(tasks.stage_part, None, Completed(data=1)) is False  # type: ignore[arg-type]


def test_the_tasks_that_touch_files_retry_with_backoff_and_the_others_never() -> None:
    for io in (tasks.plan_ingest, tasks.stage_part, tasks.read, tasks.publish, tasks.publish_evaluation):
        assert io.retries == IO_RETRIES and io.retry_condition_fn is transient
        delays = io.retry_delay_seconds
        assert isinstance(delays, list) and delays == sorted(delays) and delays[1] == 2 * delays[0]
    for computing in (tasks.train, tasks.select, tasks.gate, tasks.validate, tasks.check_privacy,
                      tasks.sample_shard, tasks.assemble):
        assert computing.retries == 0 and computing.retry_condition_fn is None


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def failing_first(error: Exception) -> tuple[list[int], Task[[], str]]:
    """A task with the flows' I/O policy (no wait between tries) whose first call raises `error`."""
    calls: list[int] = []

    def read_part() -> str:
        calls.append(len(calls))
        if len(calls) == 1:
            raise error
        return "read"

    return calls, io_task(read_part, "read-part").with_options(retry_delay_seconds=0)


@pytest.mark.slow
def test_a_transient_failure_is_retried_by_the_engine(prefect_api: None) -> None:
    calls, read_part = failing_first(OSError(errno.EIO, "Input/output error"))
    assert read_part() == "read"
    assert calls == [0, 1]


@pytest.mark.slow
@pytest.mark.parametrize("error", [BadInputError("source not found: x.csv"),
                                   StorageError("cannot publish in out/x: No space left on device")])
def test_bad_input_is_not_retried_by_the_engine(prefect_api: None, error: Exception) -> None:
    calls, read_part = failing_first(error)
    with pytest.raises(type(error)):
        read_part()
    assert calls == [0]
