"""The run's configuration at the boundary: one pydantic model, validated once.

It is fed by CLI flags, a YAML file, or Prefect flow parameters, and once validated it is handed to the library as
plain values.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from flows.gate import ALPHA, GateThresholds
from flows.sources.sql import DEFAULT_CHUNK_ROWS as SQL_CHUNK_ROWS
from flows.sources.sql import parse_url
from flows.split import DEFAULT_CHECK_ROWS, DEFAULT_CHUNK_ROWS, DEFAULT_TRAIN_ROWS, Limits
from generators.registry import GENERATORS
from generators.tabular.checks import Setting, settings
from generators.tabular.errors import BadInputError
from generators.tabular.inference import as_override

log = logging.getLogger(__name__)

DEFAULT_SHARD_ROWS = 250_000  # synthetic rows a shard holds in memory: ~350 MB for an Adult-like table
DEMO_SOURCE = Path(__file__).resolve().parent.parent / "data" / "adult.parquet"
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
AUTO_GENERATOR = "auto"  # not a model: choose one per table on a validation split (`flows.select`)
_NOT_WITH_AUTO = {
    "params": "generator auto (the default) takes no params: it tries each candidate with its own "
              "(name a generator to set params)",
    "privacy_budget": "generator auto (the default) chooses among generators without differential privacy, which a "
                      "budget refuses: name a DP generator (mst, vae or gan with params dp_epsilon)",
}


def _field(setting: Setting) -> Any:
    """A declared setting as a pydantic field: its default, its description and its bounds."""
    default = int(setting.default) if setting.integer else setting.default
    return Field(default, description=setting.description, ge=setting.ge, gt=setting.gt, le=setting.le,
                 lt=setting.lt)


class GateSettings(BaseModel):
    """Thresholds of the release gate: `alpha`, and one field per line a declared check is held to.

    Each line is declared with its check, in `validation/` and `privacy/`; `python -m flows.gate --markdown` lists
    them. Unknown keys are errors, so a misspelt threshold never passes silently.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = _field(ALPHA)

    def thresholds(self) -> GateThresholds:
        """These settings as the plain `GateThresholds` the gate judges by."""
        return GateThresholds(self.alpha, self.model_dump(exclude={"alpha"}))


# The fields come from the declarations, so the config cannot drift from the checks. Type checkers see the
# base (the fields exist only at run time); pydantic, which validates a run's `gate:`, sees the derived model.
if TYPE_CHECKING:
    GateConfig = GateSettings
else:
    GateConfig = create_model(
        "GateConfig", __base__=GateSettings, __module__=__name__,
        **{setting.name: (int if setting.integer else float, _field(setting)) for setting in settings()},
    )


class Schedule(BaseModel):
    """A cron schedule in a time zone, as a deployment runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str = Field(description="five-field cron expression, e.g. '0 3 1 * *' (03:00 on the 1st of each month)")
    timezone: str = Field("UTC", description="IANA time zone the cron is read in, e.g. 'Europe/Paris'")


class SqlSource(BaseModel):
    """A table or a query in a SQL database (`source: {sql: URL, table: NAME}` in YAML), read by `flows.sources.sql`.

    The password stays out of the config: `password_env` names the environment variable that holds it, or
    `password_secret` a Prefect `Secret` block; either is read only when the source is. One written inside the URL
    works but is warned about, since the config travels (Prefect parameters, shells' history).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sql: str = Field(description="SQLAlchemy URL without the password, e.g. postgresql+psycopg://user@host:5432/db "
                     "or sqlite:///file.db")
    table: str | None = Field(None, description="table to read whole (or give `query`)")
    query: str | None = Field(None, description="SELECT whose rows are read (or give `table`)")
    db_schema: str | None = Field(None, alias="schema", description="database schema the table is in")
    password_env: str | None = Field(None, description="environment variable holding the password")
    password_secret: str | None = Field(None, description="Prefect Secret block holding the password")
    chunk_rows: int = Field(SQL_CHUNK_ROWS, gt=0, description="rows fetched at a time (streamed)")

    @model_validator(mode="after")
    def _coherent(self) -> SqlSource:
        """Exactly one of table and query, at most one place for the password, and a URL SQLAlchemy can read."""
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table and query")
        if self.db_schema is not None and self.table is None:
            raise ValueError("schema goes with table (write the schema into the query)")
        if self.password_env is not None and self.password_secret is not None:
            raise ValueError("give at most one of password_env and password_secret")
        url = parse_url(self.sql)
        if url.password is not None:
            if self.password_env is not None or self.password_secret is not None:
                raise ValueError("the URL holds a password and password_env or password_secret names another")
            log.warning("the source URL %s holds a password: prefer password_env or password_secret",
                        url.render_as_string(hide_password=True))
        return self

    @property
    def dataset(self) -> str:
        """The default dataset name: the table's, or `query`."""
        return self.table or "query"


def _source_kind(value: Any) -> str:
    """`sql` for a mapping (or a `SqlSource`), `path` for anything else: the one branch pydantic reports on."""
    return "sql" if isinstance(value, dict | SqlSource) else "path"


class RunConfig(BaseModel):
    """Everything one `synthgate run` needs. Unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Annotated[
        Annotated[Path, Tag("path")] | Annotated[SqlSource, Tag("sql")], Discriminator(_source_kind)
    ] = Field(DEMO_SOURCE, description="CSV or Parquet file, or a folder of them, or {sql: URL, table: NAME} or "
              "{sql: URL, query: SELECT ...}")
    na_values: list[str] | None = Field(
        None, description="CSV cells read as missing, in every column (default: '', ?, NA, N/A, NaN, nan, NULL, null, "
        "None; NA and None only in columns of numbers)"
    )
    generator: str = Field(
        AUTO_GENERATOR, description="auto (choose per table, see `flows.select`) or a registry key of a generator"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="the generator's hyper-parameters")
    out: Path = Field(Path("releases"), description="root folder of the releases")
    name: str | None = Field(None, description="dataset name under OUT (default: the source's file name)")
    rows: int | None = Field(None, gt=0, description="synthetic rows to publish (default: as many as the source)")
    seed: int = Field(0, ge=0, description="seeds the split, the training and the sampling")
    holdout: float = Field(0.2, gt=0, lt=1, description="share of rows held out from training for the checks")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    target: str | None = Field(None, description="target column for utility checks")
    rebalance: str | None = Field(
        None, description="categorical or boolean column whose values get equal shares of the rows (augmentation)"
    )
    columns: dict[str, str | dict[str, Any]] = Field(
        default_factory=dict, description="schema overrides: column -> kind, or column -> {kind: ..., ...}; "
        "{categories: [...], public: true} or {bounds: [low, high], public: true} declares a column's domain public "
        "(a DP fit then keeps it as declared and pays nothing for it)"
    )
    public_domain: bool = Field(
        False, strict=True, description="you assert the categories and ranges of this table are not secret: every "
        "category set and bound inferred at ingest counts as declared public (a column's `public: false` opts it out)"
    )
    privacy_budget: float | None = Field(
        None, gt=0, description="total epsilon this dataset may spend over all its releases (needs a DP generator)"
    )
    gate: GateConfig = GateConfig()
    keep: int | None = Field(
        None, ge=1, description="releases to keep per dataset (older ones are deleted after a publish; CURRENT and "
        "the newest are always kept); none = keep all"
    )
    schedule: Schedule | None = Field(None, description="when a deployment of this config runs (`synthgate deploy`)")
    train_deployment: str | None = Field(
        None, description="Prefect deployment ('flow/deployment') that trains on a work pool, e.g. 'train/gpu'; "
        "none = train in this process"
    )
    retrain: bool = Field(False, description="fit again even when a model for the same rows and config is cached")
    chunk_rows: int = Field(DEFAULT_CHUNK_ROWS, gt=0, description="source rows read at a time; the first chunk decides "
                            "the columns' kinds, and a table no longer than one chunk is held in memory whole")
    train_rows: int = Field(DEFAULT_TRAIN_ROWS, gt=0, description="the most rows a generator is fitted on (a seeded "
                            "sample of the training side when it has more)")
    check_rows: int = Field(DEFAULT_CHECK_ROWS, gt=0, description="the most rows of each table the sampled checks read "
                            "(exact copies are counted over every row)")
    shard_rows: int = Field(DEFAULT_SHARD_ROWS, gt=0, description="synthetic rows sampled and written per shard, each "
                            "seeded from the run's seed and its index")
    dask: str | None = Field(None, description="address of a Dask scheduler (tcp://host:8786) to fan the sampling "
                             "shards out on; without it everything runs in this process")

    @property
    def limits(self) -> Limits:
        """How much of the table the run holds at once."""
        return Limits(self.chunk_rows, self.train_rows, self.check_rows)

    @field_validator("generator")
    @classmethod
    def _known_generator(cls, value: str) -> str:
        if value != AUTO_GENERATOR and value not in GENERATORS:
            raise ValueError(f"unknown generator '{value}'; known: {', '.join(sorted([*GENERATORS, AUTO_GENERATOR]))}")
        return value

    @field_validator("params", "privacy_budget")
    @classmethod
    def _not_with_auto(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse `params` and a privacy budget with `auto`, which fits neither.

        `auto` tries each candidate with its own parameters, none of them differentially private: `params` would fit
        some candidates and not others, and a privacy budget would refuse every choice.
        """
        if value and info.data.get("generator") == AUTO_GENERATOR:
            raise ValueError(_NOT_WITH_AUTO[info.field_name or ""])
        return value

    @field_validator("columns")
    @classmethod
    def _overrides(cls, value: dict[str, str | dict[str, Any]]) -> dict[str, str | dict[str, Any]]:
        """Each override's kind and `public` checked now, before any data is read."""
        for name, override in value.items():
            try:
                as_override(name, override)
            except BadInputError as err:
                raise ValueError(str(err)) from None
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        if value is not None and not _DATASET_NAME.match(value):
            raise ValueError("must be letters, digits, '.', '_' or '-' (it names a folder)")
        return value

    @property
    def dataset(self) -> str:
        """The dataset's folder name under `out`."""
        if self.name is not None:
            return self.name
        stem = self.source.dataset if isinstance(self.source, SqlSource) else self.source.name.split(".")[0]
        stem = stem or "dataset"
        return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "dataset"


def load_config(path: Path | None = None, **flags: Any) -> RunConfig:
    """The run's config from an optional YAML file with CLI flags on top (flags left `None` are unset).

    Relative paths in the YAML file are relative to the file's folder, as a user reading it expects; so is the file
    of a `sqlite:///relative.db` source.
    """
    values: dict[str, Any] = read_yaml(path) if path is not None else {}
    if path is not None:
        for key in ("source", "out"):
            if isinstance(values.get(key), str):
                values[key] = str((path.parent / values[key]).expanduser())
        source = values.get("source")
        if isinstance(source, dict) and isinstance(source.get("sql"), str):
            values["source"] = {**source, "sql": _sqlite_beside(source["sql"], path.parent)}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return RunConfig.model_validate(values)
    except ValidationError as err:
        raise BadInputError(f"config: {describe_validation_error(err)}") from None


def _sqlite_beside(text: str, folder: Path) -> str:
    """A SQLite URL whose relative file is taken from `folder`; any other URL (or a malformed one) unchanged."""
    try:
        url = parse_url(text)
    except BadInputError:
        return text  # the model's validation says what is wrong with it
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return text
    if Path(database).expanduser().is_absolute():
        return text
    return url.set(database=str(folder / database)).render_as_string(hide_password=False)


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping, or a one-line `BadInputError` that says what is wrong with the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(f"config file {path} cannot be read: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise BadInputError(f"config file {path} is malformed YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInputError(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def describe_validation_error(err: ValidationError) -> str:
    """The first of pydantic's errors as `field: message`, with how many more there are."""
    errors = err.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "value"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"
