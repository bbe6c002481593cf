"""Training handed off to a work pool: the release flow asks, a `train` run on the pool (a GPU machine) fits.

The release flow runs where the data is; the fit needs a GPU, which that machine may lack. So the release flow
writes the training rows and a small JSON request into its run folder, starts a run of the `train` deployment
(`config.train_deployment`, e.g. `train/gpu`, on the GPU work pool) and waits for it; that run reads the request,
fits the model and saves it beside the request, and the release flow loads it and goes on.

What crosses the orchestrator is URIs only: the deployment's one parameter is the request's URI and the train run
returns the model file's sha256, so Prefect never stores a row, a category or a model. The private rows live in
the run folder only for the length of the training: the caller deletes `train.parquet` once it has loaded the
model. A train worker on another machine needs the run folder on storage both machines reach (a shared mount),
or a request whose URIs are remote (any fsspec URL: `s3://`, `gs://`, ...), which `train` reads and writes as well.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, cast

import fsspec
import pandas as pd
from fsspec.implementations.local import LocalFileSystem
from prefect import flow
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from flows.release.publish import sha256_file
from generators.base import Generator
from generators.registry import create
from generators.tabular.errors import BadInputError
from generators.tabular.schema import Schema

TRAIN_FLOW = "train"  # the flow's name: a train deployment is `train/<name>`
ROWS, REQUEST, MODEL = "train.parquet", "request.json", "generator.pt"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainRequest:
    """What a `train` run needs: where the rows are, how to read and fit them, where the model goes.

    The schema travels with the rows because a fit needs the same kinds the release flow inferred (a column of
    codes stays categorical), and Parquet alone would not say so.
    """

    data: str
    schema: dict[str, Any]
    generator: str
    params: dict[str, Any]
    seed: int
    device: str
    model: str

    @classmethod
    def read(cls, uri: str) -> TrainRequest:
        """The request at `uri` (a path or an fsspec URL), or a one-line `BadInputError` saying what is wrong."""
        try:
            with fsspec.open(uri, "r", encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise BadInputError(f"train request not found: {uri}") from None
        except (OSError, ValueError) as err:
            raise BadInputError(f"train request {uri} cannot be read: {err}") from None
        expected = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != expected:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise BadInputError(f"train request {uri} must hold exactly {sorted(expected)}, not {keys}")
        return cls(**data)

    def write(self, path: Path) -> None:
        """Write the request as JSON."""
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")


@flow(name=TRAIN_FLOW, persist_result=False)
def train(request: str) -> str:
    """Fit the generator a request names on its rows, save it where the request says, return the file's sha256.

    Args:
        request: URI of the JSON request the release flow wrote (`TrainRequest`).

    Returns:
        The model file's sha256, so the run's record ties it to the file the release flow loads; never a row.
    """
    order = TrainRequest.read(request)
    frame = pd.read_parquet(order.data)
    started = time.perf_counter()
    model = create(order.generator, order.params, seed=order.seed, device=order.device).fit(
        frame, Schema.from_dict(order.schema))
    log.info("fitted %s on %d rows on %s in %.1f s", order.generator, len(frame), model.device_,
             time.perf_counter() - started)
    digest = save_model(model, order.model)
    log.info("saved the model to %s (sha256 %s)", order.model, digest)
    return digest


def save_model(model: Generator, uri: str) -> str:
    """Save `model` (CPU-loadable, `Generator.save`) to a path or fsspec URL; its sha256.

    A remote file is written locally first and then put, since `save` writes a local file.
    """
    fs, path = fsspec.core.url_to_fs(uri)
    if isinstance(fs, LocalFileSystem):
        local = Path(path)
        local.parent.mkdir(parents=True, exist_ok=True)
        model.save(local)
        return sha256_file(local)
    with tempfile.TemporaryDirectory(prefix="synthgate-model-") as folder:
        local = Path(folder) / MODEL
        model.save(local)
        fs.put_file(str(local), path)
        return sha256_file(local)


def train_remotely(deployment: str, frame: pd.DataFrame, schema: Schema, name: str, params: Mapping[str, Any],
                   seed: int, device: str, run_dir: Path) -> Path:
    """Fit on the work pool of a `train` deployment and wait for it; the path of the saved model.

    Writes `run_dir/train.parquet` and `run_dir/request.json`, runs the deployment as a subflow of the calling
    flow (so the UI shows the training under its release) and returns `run_dir/generator.pt`. The caller loads
    it (`generators.registry.load`) and deletes `run_dir/train.parquet`: the rows stay on disk only while the
    training runs.

    Raises:
        BadInputError: the deployment's name is malformed or no such deployment is registered.
        RuntimeError: the train run ended in a state other than completed (failed, crashed, cancelled).
    """
    split_deployment_name(deployment)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows, request, model = (run_dir / ROWS).resolve(), (run_dir / REQUEST).resolve(), (run_dir / MODEL).resolve()
    frame.to_parquet(rows, index=False)
    TrainRequest(data=str(rows), schema=schema.to_dict(), generator=name, params=dict(params), seed=seed,
                 device=device, model=str(model)).write(request)
    log.info("training %s on %d rows through the deployment %s", name, len(frame), deployment)
    try:
        # Called from synchronous code, Prefect's dual sync/async function runs to the end and returns the run.
        run = cast(FlowRun, run_deployment(deployment, parameters={"request": str(request)}, as_subflow=True))
    except ObjectNotFound:
        raise BadInputError(f"train_deployment: no deployment '{deployment}' is registered on the Prefect server "
                            "(register it with `synthgate deploy`)") from None
    state = run.state
    if state is None or not state.is_completed():
        what = f"{state.name}: {state.message or 'no message'}" if state is not None else "without a state"
        raise RuntimeError(f"the training run {run.name} of {deployment} ended {what}")
    return model


def split_deployment_name(deployment: str) -> tuple[str, str]:
    """('train', name) from 'train/name', or a one-line `BadInputError`: only the train flow fits models."""
    flow_name, _, name = deployment.partition("/")
    if flow_name != TRAIN_FLOW or not name or "/" in name:
        raise BadInputError(f"train_deployment must name a deployment of the '{TRAIN_FLOW}' flow, "
                            f"'{TRAIN_FLOW}/<name>' (e.g. '{TRAIN_FLOW}/gpu'), not '{deployment}'")
    return flow_name, name
