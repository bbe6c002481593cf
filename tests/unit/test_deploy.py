"""Deployments built from release configs, the declarative files, the GPU job templates, and the train flow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import pandas as pd
import pytest
import yaml
from prefect.cli.deploy._models import PrefectYamlModel, RawScheduleConfig
from prefect.client.schemas.objects import ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.events import Event
from prefect.events.schemas.automations import AutomationCore, EventTrigger
from prefect.events.schemas.events import Resource, ResourceSpecification
from prefect.flows import load_flow_from_entrypoint
from prefect.server.utilities.user_templates import render_user_template_sync
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.templating import apply_values
from prefect.workers.base import BaseJobConfiguration
from typer.testing import CliRunner

from flows.cli import EXIT_BAD_INPUT, app
from flows.config import RunConfig, Schedule, load_config
from flows.deploy import RELEASE_POOL, TRAIN_POOL, build_deployments
from flows.handoff import TrainRequest, train, train_remotely
from flows.release.events import REFUSED, dataset_resource
from flows.release.publish import sha256_file
from generators import registry
from generators.tabular.errors import BadInputError
from generators.tabular.schema import Schema

ROOT = Path(__file__).resolve().parents[2]
DEMO_RELEASE = ROOT / "data" / "adult.release.yaml"


def _config(**values: Any) -> RunConfig:
    defaults: dict[str, Any] = {"generator": "gmm", "name": "adult", "source": "data/adult.parquet", "out": "rel",
                                "schedule": Schedule(cron="0 3 1 * *", timezone="Europe/Paris")}
    return RunConfig.model_validate({**defaults, **values})


# --- deployments built from configs ---------------------------------------------------------------------------

def test_release_deployment_carries_name_schedule_parameters_and_one_run_at_a_time() -> None:
    config = _config(train_deployment="train/gpu", keep=12)
    release, trainer = build_deployments([config])

    assert (release.flow_name, release.name, release.work_pool_name) == ("synthesize", "adult", RELEASE_POOL)
    assert release.entrypoint == "flows.synthesize.synthesize"
    [schedule] = release.schedules or []
    assert isinstance(schedule.schedule, CronSchedule)
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 1 * *", "Europe/Paris")
    assert release.concurrency_limit == 1
    assert release.concurrency_options is not None
    assert release.concurrency_options.collision_strategy is ConcurrencyLimitStrategy.ENQUEUE

    # The parameters are what Prefect hands the flow: they validate back into the same config, paths absolute.
    parameters = json.loads(json.dumps(release.parameters))
    restored = RunConfig.model_validate(parameters["config"])
    assert isinstance(restored.source, Path) and isinstance(config.source, Path)
    assert restored.source.is_absolute() and restored.out.is_absolute()
    assert restored == config.model_copy(update={"source": config.source.resolve(), "out": config.out.resolve()})

    assert (trainer.flow_name, trainer.name, trainer.work_pool_name) == ("train", "gpu", TRAIN_POOL)
    assert trainer.entrypoint == "flows.handoff.train"
    assert trainer.concurrency_limit == 1 and not trainer.schedules


def test_a_train_deployment_is_built_once_and_only_when_a_config_names_it() -> None:
    in_process = build_deployments([_config()])
    assert [d.flow_name for d in in_process] == ["synthesize"]

    two = build_deployments([_config(name="a", train_deployment="train/gpu"),
                             _config(name="b", train_deployment="train/gpu")])
    assert sorted(f"{d.flow_name}/{d.name}" for d in two) == ["synthesize/a", "synthesize/b", "train/gpu"]

    served = build_deployments([_config(train_deployment="train/gpu")], pool=None, train_pool=None)
    assert all(d.work_pool_name is None for d in served)


@pytest.mark.parametrize(("configs", "message"), [
    ([_config(train_deployment="fit/gpu")], "train_deployment must name a deployment of the 'train' flow"),
    ([_config(train_deployment="train")], "train_deployment must name a deployment of the 'train' flow"),
    ([_config(), _config()], "two configs release the same dataset (adult)"),
    ([_config(schedule=Schedule(cron="every month"))], "schedule of adult:"),
    ([_config(schedule=Schedule(cron="0 3 1 * *", timezone="Mars/Olympus"))], "schedule of adult:"),
])
def test_bad_deployment_settings_are_one_line_errors(configs: list[RunConfig], message: str) -> None:
    with pytest.raises(BadInputError) as caught:
        build_deployments(configs)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("command", ["deploy", "serve"])
def test_deploy_and_serve_without_a_server_exit_2_with_how_to(command: str) -> None:
    with temporary_settings(updates={PREFECT_API_URL: None}):
        result = CliRunner().invoke(app, [command, str(DEMO_RELEASE)])
    assert result.exit_code == EXIT_BAD_INPUT
    assert f"synthgate {command} needs a Prefect server" in result.output
    assert "Traceback" not in result.output


# --- prefect.yaml and automations.yaml ----------------------------------------------------------------------

def test_prefect_yaml_is_valid_and_declares_the_demo_release_and_the_gpu_training() -> None:
    project = PrefectYamlModel.model_validate(yaml.safe_load((ROOT / "prefect.yaml").read_text()))
    by_name = {d.name: d for d in project.deployments}
    assert set(by_name) == {"synthesize-adult", "gpu"}
    release, gpu = by_name["synthesize-adult"], by_name["gpu"]

    # Entrypoints load the real flows, as `prefect deploy` will.
    assert load_flow_from_entrypoint(str(ROOT / str(release.entrypoint))).name == "synthesize"
    assert load_flow_from_entrypoint(str(ROOT / str(gpu.entrypoint))).name == "train"
    assert release.work_pool is not None and release.work_pool.name == RELEASE_POOL
    assert gpu.work_pool is not None and gpu.work_pool.name == TRAIN_POOL
    for deployment in (release, gpu):
        limit = deployment.concurrency_limit
        assert not isinstance(limit, int) and limit is not None
        assert (limit.limit, limit.collision_strategy) == (1, "ENQUEUE")

    # Its parameters are the demo config of data/adult.release.yaml (relative to the repository, where workers
    # run it), schedule included: the two declarations cannot drift apart.
    demo = load_config(DEMO_RELEASE)
    declared = RunConfig.model_validate(release.parameters["config"])
    assert isinstance(declared.source, Path) and isinstance(demo.source, Path)
    resolved = declared.model_copy(update={"source": ROOT / declared.source, "out": ROOT / declared.out})
    assert resolved.model_dump() == demo.model_copy(
        update={"source": demo.source.resolve(), "out": demo.out.resolve()}).model_dump()
    assert demo.keep == 12 and demo.train_deployment == f"train/{gpu.name}"
    [schedule] = release.schedules or []
    assert isinstance(schedule, RawScheduleConfig)
    assert demo.schedule is not None
    assert (schedule.cron, schedule.timezone) == (demo.schedule.cron, demo.schedule.timezone)


def test_automation_file_is_valid_and_fires_on_a_refused_release() -> None:
    data = yaml.safe_load((ROOT / "automations.yaml").read_text())
    [automation] = [AutomationCore.model_validate(item) for item in data["automations"]]
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    [action] = automation.actions
    assert action.type == "send-notification"

    # The event as the release flow emits it (`flows.release.events`).
    refused = Event(event=REFUSED, resource=Resource(dataset_resource("adult")),
                    payload={"run_id": "20260101T030000-abc",
                             "failed_checks": ["privacy.dcr_share", "fidelity.quality"]})
    assert trigger.expect == {refused.event}
    assert isinstance(trigger.match, ResourceSpecification)
    assert trigger.match.matches(refused.resource)
    assert not trigger.match.matches(Resource({"prefect.resource.id": "prefect.flow-run.123"}))

    # The notification renders with Prefect's own templating: it names the dataset, the run and the failed checks.
    body = render_user_template_sync(action.body, {"event": refused})  # type: ignore[union-attr]
    subject = render_user_template_sync(action.subject, {"event": refused})  # type: ignore[union-attr]
    assert "synthgate.dataset.adult" in subject
    assert "20260101T030000-abc" in body and "privacy.dcr_share, fidelity.quality" in body


# --- GPU job templates --------------------------------------------------------------------------------------

class DockerJob(BaseJobConfiguration):
    """The Docker worker's job fields these tests read (prefect-docker is not a dependency)."""

    image: str
    volumes: list[str]
    container_create_kwargs: dict[str, Any]


class KubernetesJob(BaseJobConfiguration):
    """The Kubernetes worker's job fields these tests read (prefect-kubernetes is not a dependency)."""

    namespace: str
    job_manifest: dict[str, Any]


def _render(template: str, job: type[BaseJobConfiguration], values: dict[str, Any]) -> Any:
    """What a worker does with a pool's template: variables' defaults, the deployment's values on top, rendered.

    (`from_template_and_values` would also resolve block references, which needs a Prefect API; none are here.)
    """
    base = json.loads((ROOT / "docs" / "deploy" / template).read_text())
    variables = job._get_base_config_defaults(base["variables"]["properties"]) | values
    return job(**apply_values(base["job_configuration"], variables))


def test_docker_gpu_template_renders_with_the_gpu_request() -> None:
    job = _render("docker-gpu.json", DockerJob, {"image": "registry.example/synthgate:gpu", "gpu_count": 2,
                                                 "name": "train-run"})
    assert "{{" not in job.model_dump_json()
    assert job.image == "registry.example/synthgate:gpu"
    [request] = job.container_create_kwargs["device_requests"]
    assert request == {"driver": "nvidia", "count": 2, "capabilities": [["gpu"]]}
    assert job.volumes == ["/srv/synthgate:/srv/synthgate"]
    assert job.env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] == "false"

    default = _render("docker-gpu.json", DockerJob, {"name": "train-run"})
    assert default.container_create_kwargs["device_requests"][0]["count"] == 1


def test_kubernetes_gpu_template_renders_with_the_gpu_limit() -> None:
    job = _render("kubernetes-gpu.json", KubernetesJob, {"image": "registry.example/synthgate:gpu", "gpu_count": 1,
                                                         "name": "train-run", "namespace": "ml"})
    manifest = job.job_manifest
    assert "{{" not in json.dumps(manifest)
    pod = manifest["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"] == "registry.example/synthgate:gpu"
    assert manifest["metadata"]["generateName"] == "train-run-" and manifest["metadata"]["namespace"] == "ml"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "synthgate-releases"
    assert container["volumeMounts"][0]["mountPath"] == "/srv/synthgate"


# --- the train flow -----------------------------------------------------------------------------------------

class TestTrainFlow:
    """The `train` flow's body on a tiny mixed table: request in, a loadable model out, rows never returned."""

    request_keys: ClassVar[set[str]] = {"data", "schema", "generator", "params", "seed", "device", "model"}

    def _request(self, base: str, frame: pd.DataFrame, schema: Schema) -> str:
        with fsspec.open(f"{base}/train.parquet", "wb") as handle:
            frame.to_parquet(handle, index=False)
        request = {"data": f"{base}/train.parquet", "schema": schema.to_dict(), "generator": "copula", "params": {},
                   "seed": 3, "device": "cpu", "model": f"{base}/model/generator.pt"}
        assert set(request) == self.request_keys
        with fsspec.open(f"{base}/request.json", "w") as handle:
            json.dump(request, handle)
        return f"{base}/request.json"

    def test_local_request_gives_a_model_that_samples(self, tmp_path: Path, mixed_frame: pd.DataFrame,
                                                      mixed_schema: Schema) -> None:
        digest = train.fn(self._request(str(tmp_path), mixed_frame, mixed_schema))
        model_file = tmp_path / "model" / "generator.pt"
        assert digest == sha256_file(model_file)
        rows = registry.load(model_file).sample(50)
        assert list(rows.columns) == list(mixed_frame.columns) and len(rows) == 50

    def test_remote_request_is_read_and_the_model_put_through_fsspec(self, mixed_frame: pd.DataFrame,
                                                                    mixed_schema: Schema, tmp_path: Path) -> None:
        base = "memory://synthgate-test-handoff"
        digest = train.fn(self._request(base, mixed_frame, mixed_schema))
        local = tmp_path / "generator.pt"
        fsspec.filesystem("memory").get_file(f"{base}/model/generator.pt", str(local))
        assert digest == sha256_file(local)
        assert len(registry.load(local).sample(10)) == 10

    def test_a_malformed_request_is_one_line(self, tmp_path: Path) -> None:
        (tmp_path / "request.json").write_text(json.dumps({"data": "x.parquet"}))
        with pytest.raises(BadInputError, match="must hold exactly"):
            TrainRequest.read(str(tmp_path / "request.json"))
        with pytest.raises(BadInputError, match="train request not found"):
            TrainRequest.read(str(tmp_path / "missing.json"))


def test_train_remotely_refuses_a_malformed_deployment_before_writing_rows(tmp_path: Path, mixed_frame: pd.DataFrame,
                                                                           mixed_schema: Schema) -> None:
    with pytest.raises(BadInputError, match="'train/<name>'"):
        train_remotely("gpu", mixed_frame, mixed_schema, "copula", {}, 0, "cpu", tmp_path / "run")
    assert not (tmp_path / "run").exists()
