"""Benchmark suites: a TOML file -> a validated list of training runs (one concept: the suite).

A suite is the product envs x backends x presets x mappings x schemes x seeds, with a budget
and, optionally, a sweep::

    name = "smoke"                    # optional; default: the file's stem
    description = "..."               # optional
    [matrix]
    envs = ["CartPole"]               # required: short names or Gymnasium ids
    backends = ["rram", "float"]      # default ["rram"]
    presets = ["default"]             # default ["default"]   (rlime.cost.energy.PRESETS)
    mappings = ["time"]               # default ["time"]      (rlime.drl.mappings.MAPPINGS)
    schemes = ["write-verify"]        # default: each preset's own tuning scheme
    seeds = [1, 2]                    # default [1]
    [budget]                          # optional; anything left out comes from
    total_steps = 600                 #   experiments/hyperparams.toml, per env
    eval_every = 300
    eval_episodes = 2
    checkpoint_every = 300
    [settings]                        # optional: `--set section.key=value` for every run
    "agent.hidden" = [32, 32]
    [env.CartPole]                    # optional per-env overrides (key = a name in matrix.envs):
    total_steps = 50_000              #   any [budget] key, and a `settings` table merged over
    settings = { "agent.learning_rate" = 1e-3 }   # the suite-wide [settings]
    [sweep]                           # optional: one factor at a time from each rram run
    "device.levels" = [16, 32, 64]    #   a setting and its values
    "tuning.scheme" = ["open-loop", "gradual"]    # (the one matrix-owned setting a sweep varies)
    adc_bits = [{ "forward.adc_bits" = 6, "backward.adc_bits" = 6 }]  # settings changed together

**Sweeps** (:mod:`rlime.bench.sweep` has the rules): every rram entry of the matrix is a
*baseline*, run once per seed, and each point of each factor a *variant* of it that changes that
factor only (applied over the suite's and the env's settings). A point equal to the default
(its configuration is the baseline's) is folded into the baseline. Variants are named
``<baseline name without the seed>-<factor>=<value>-s<seed>``, e.g.
``CartPole-rram-default-time-write-verify-device.levels=16-s1`` (characters other than letters,
digits and ``._=-`` become ``_``). A variant keeps its baseline's labels (preset, mapping,
scheme): ``...-write-verify-tuning.scheme=gradual-s1`` is that baseline tuned with `gradual`.
Entries record the `factor` varied ("" for a baseline) and the run's value on every factor's
`axes`, which the leaderboard groups and plots by. Float runs are not varied: they are the
reference.

**The float backend collapses.** Presets and tuning schemes are hardware: on the float backend
they change nothing, and the `time` and `separate` mappings differ only in what they *charge*
(where the target network and replay live), not in what the agent computes. So the float
backend gives one run per env x seed for plain DQN (run with mapping `time`, labelled preset,
mapping and scheme "-", directory ``<env>-float-s<seed>``), plus one per env x seed with the
`shared` mapping if the suite lists it (a different algorithm: no target network; labelled
mapping "shared", directory ``<env>-float-shared-s<seed>``). RRAM runs are named
``<env>-rram-<preset>-<mapping>-<scheme>-s<seed>``.

Settings that the matrix or the budget own (``run.backend``, ``run.seed``, ``run.total_steps``,
``tuning.scheme``, ...) are refused in ``[settings]`` (and but for ``tuning.scheme`` in
``[sweep]``) with a pointer to the right place. Two entries of one configuration are refused.

**Supervised suites.** A suite whose matrix lists ``datasets`` instead of ``envs`` runs
``python -m rlime.sl`` (supervised learning in memory, `rlime.sl`)::

    [matrix]
    datasets = ["digits"]             # required: digits, mnist
    networks = ["mlp", "lenet"]       # default: each dataset's own (experiments/sl_defaults.toml)
    backends = ["rram", "float"]      # default ["rram"]
    presets = ["default"]
    schemes = ["write-verify"]        # default: each preset's own
    update_modes = ["time", "mixed-precision"]   # default ["auto"]
    seeds = [1, 2, 3]
    [budget]
    epochs = 20                       # and checkpoint_every (epochs)
    [settings]
    "train.batch_size" = 32
    [dataset.mnist]                   # per-dataset budget and settings, as [env.X]
    settings = { "run.data" = "/data/mnist" }

Float entries collapse presets, schemes and update modes (one run per dataset x network x
seed, ``<dataset>-<network>-float-s<seed>``); RRAM entries are named
``<dataset>-<network>-rram-<preset>-<scheme>-<mode>-s<seed>``. An entry's budget
(`Entry.total_steps`) is then its epochs.

Every error is a :class:`SuiteError` whose message names the file, the key and what is allowed.
Each run's `RunConfig` is resolved by `rlime.harness.run_config.resolve`, the function
``python -m rlime.train`` resolves its flags with, from the same (key, value) settings its
`argv` spells; so a bad setting value is caught before anything starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from envs import resolve_env
from experiments import bundled, suite_names

from rlime.bench.labels import NOT_APPLICABLE, format_value, run_labels, run_name, variant_label
from rlime.bench.sweep import Point, Sweep, parse_sweep
from rlime.common.errors import ConfigError
from rlime.common.files import tomllib
from rlime.cost.energy import PRESETS, preset as named_preset
from rlime.drl.mappings import MAPPINGS
from rlime.harness.pipeline import BACKENDS, UPDATE_MODES
from rlime.harness.run_config import RunConfig, resolve, to_argv
from rlime.hw.config import TUNING_SCHEMES
from rlime.sl import config as sl_config
from rlime.sl.config import SLConfig
from rlime.sl.data import DATASETS
from rlime.sl.nets import NETWORKS

__all__ = ["Suite", "SuiteError", "Entry", "load_suite", "parse_suite"]

TOP_LEVEL_KEYS = ("name", "description", "matrix", "budget", "settings", "env", "dataset",
                  "sweep")
BUDGET_KEYS = ("total_steps", "eval_every", "eval_episodes", "checkpoint_every")
ENV_KEYS = BUDGET_KEYS + ("settings",)
MATRIX_KEYS = ("envs", "backends", "presets", "mappings", "schemes", "seeds")
MATRIX_DEFAULTS: dict[str, list[Any]] = {"backends": ["rram"], "presets": ["default"],
                                         "mappings": ["time"], "seeds": [1],
                                         "update_modes": ["auto"]}
SL_BUDGET_KEYS = ("epochs", "checkpoint_every")
SL_MATRIX_KEYS = ("datasets", "networks", "backends", "presets", "schemes", "update_modes",
                  "seeds")

# settings owned by the matrix or the budget, and where to put them instead
OWNED_SETTINGS = {
    "run.env": "matrix.envs", "run.backend": "matrix.backends", "run.preset": "matrix.presets",
    "hardware.preset": "matrix.presets", "run.mapping": "matrix.mappings",
    "tuning.scheme": "matrix.schemes", "run.seed": "matrix.seeds",
    **{f"run.{key}": f"budget.{key}" for key in BUDGET_KEYS},
}
# owned settings a [sweep] may vary nonetheless (one factor at a time from the matrix's value)
SWEPT_OWNED = ("tuning.scheme",)

SL_OWNED_SETTINGS = {
    "run.dataset": "matrix.datasets", "train.network": "matrix.networks",
    "run.backend": "matrix.backends", "run.preset": "matrix.presets",
    "tuning.scheme": "matrix.schemes", "run.update_mode": "matrix.update_modes",
    "run.seed": "matrix.seeds", **{f"run.{key}": f"budget.{key}" for key in SL_BUDGET_KEYS},
}


@dataclass(frozen=True)
class _Kind:
    """What a suite trains: DQN agents on envs, or classifiers on datasets."""

    name: str                     # Entry.kind: "dqn" or "sl"
    items: str                    # the matrix key of its tasks: "envs", "datasets"
    overrides: str                # the per-task table: "env", "dataset"
    matrix_keys: tuple[str, ...]
    budget_keys: tuple[str, ...]
    owned: dict[str, str]
    unit: str                     # what the budget counts


DQN = _Kind("dqn", "envs", "env", MATRIX_KEYS, BUDGET_KEYS, OWNED_SETTINGS, "environment steps")
SL = _Kind("sl", "datasets", "dataset", SL_MATRIX_KEYS, SL_BUDGET_KEYS, SL_OWNED_SETTINGS,
           "epochs")


class SuiteError(ConfigError):
    """The suite file cannot be used; the message names the file, the key and what is allowed."""


class Command(NamedTuple):
    """The command of an entry's kind: `python -m MODULE`, the summary.json key its budget is
    counted in, the configuration field and the flag that set the budget."""

    module: str
    budget_key: str
    budget_field: str
    budget_flag: str


COMMANDS = {"dqn": Command("rlime.train", "steps", "total_steps", "--total-steps"),
            "sl": Command("rlime.sl", "epochs", "epochs", "--epochs")}


@dataclass(frozen=True)
class Entry:
    """One training run of a suite.

    `preset`, `mapping`, `scheme` and `mode` (the update mode) are the *labels* (``"-"`` where
    the float backend makes them meaningless, or the workload has no such thing); `config` the
    resolved configuration, `argv` the flags of its command (`module`: ``python -m
    rlime.train``, or ``rlime.sl`` for a supervised entry) that resolve to it (without
    ``--run-dir``/``--resume``/``--no-progress``), and `total_steps` the budget: environment
    steps, or epochs for a supervised entry (`kind` "sl", whose env, env_name and env_id name
    the dataset and network).
    A sweep variant (`rlime.bench.sweep`) names its `factor` ("" for a baseline and outside
    sweeps); `axes` holds the run's value on every factor's axis.
    """

    name: str
    env: str                 # as written in the suite (passed to --env)
    env_name: str            # short display name (EnvSpec.name)
    env_id: str
    backend: str
    preset: str
    mapping: str
    scheme: str
    seed: int
    total_steps: int
    argv: tuple[str, ...] = field(repr=False)
    config: RunConfig | SLConfig = field(repr=False)
    kind: str = "dqn"
    mode: str = NOT_APPLICABLE
    factor: str = ""
    axes: tuple[tuple[str, Any], ...] = ()

    @property
    def command(self) -> "Command":
        """How the entry runs and counts its budget (`COMMANDS`)."""
        return COMMANDS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's record of the entry (its config is in the run's config.toml)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "config"}
        data["budget_key"] = self.command.budget_key
        data["argv"] = list(self.argv)
        data["axes"] = dict(self.axes)
        return data


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    path: Path
    entries: tuple[Entry, ...]
    kind: str = "dqn"

    def manifest(self) -> dict[str, Any]:
        """What the runner records in ``<out>/suite.json`` (read back by the leaderboard)."""
        return {"name": self.name, "description": self.description, "file": str(self.path),
                "kind": self.kind, "entries": [e.to_dict() for e in self.entries]}


# ---------------------------------------------------------------------------------------------
# parsing and validation
# ---------------------------------------------------------------------------------------------


def load_suite(suite: str | Path) -> Suite:
    """Read, validate and expand a suite: a file path, or a bundled suite's name ("smoke").

    A path that exists wins; otherwise a bare name (with or without ``.toml``) is looked up
    among the suites bundled as package data (`experiments.suite_names()`). SuiteError on any
    problem, naming the bundled suites when neither is found.
    """
    path = Path(suite)
    name = path.stem if path.parent == Path(".") and path.suffix in ("", ".toml") else None
    if not path.is_file() and name in suite_names():
        bundled_file = bundled(f"{name}.toml")
        return parse_suite(bundled_file.read_text(), Path(str(bundled_file)))
    try:
        text = path.read_text()
    except OSError as err:
        raise SuiteError(f"{path}: cannot read the suite file ({err.strerror or err}); give the "
                         f"path of a TOML suite file or the name of a bundled suite: "
                         f"{', '.join(suite_names())}") from None
    return parse_suite(text, path)


def parse_suite(text: str, path: str | Path = "suite.toml") -> Suite:
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"{path}: not valid TOML ({err}); a suite is a TOML file with a "
                         f"[matrix] table (see experiments/smoke.toml)") from None
    return _Validator(path).suite(data)


class _Validator:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = DQN

    def fail(self, key: str, problem: str, allowed: str) -> SuiteError:
        return SuiteError(f"{self.path}: {key}: {problem}; allowed: {allowed}")

    # -- structure --------------------------------------------------------------------------

    def suite(self, data: dict[str, Any]) -> Suite:
        self._keys(data, TOP_LEVEL_KEYS, "")
        name = data.get("name", self.path.stem)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise self.fail("name", f"{name!r} is not a usable suite name",
                            "a string of letters, digits, '.', '_' or '-'")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"{description!r} is not a string", "a string")
        if "matrix" not in data:
            raise self.fail("matrix", "the [matrix] table is missing",
                            f"a [matrix] table with keys {', '.join(MATRIX_KEYS)} "
                            f"(envs is required), or {', '.join(SL_MATRIX_KEYS)} (datasets "
                            f"is required) for supervised learning")
        matrix = self._table(data, "matrix")
        self.kind = SL if "datasets" in matrix else DQN
        if "datasets" in matrix and "envs" in matrix:
            raise self.fail("matrix", "both envs and datasets are listed",
                            "one suite trains DQN agents (envs) or classifiers (datasets)")
        self._keys(matrix, self.kind.matrix_keys, "matrix")
        unused = self.kind.overrides == "env" and "dataset" or "env"
        if unused in data:
            raise self.fail(unused, f"a [{unused}.*] table in a suite of {self.kind.items}",
                            f"[{self.kind.overrides}.<name>] tables")
        budget = self._budget(self._table(data, "budget", {}), "budget")
        settings = self._settings(self._table(data, "settings", {}), "settings")
        self.sweep = self._sweep(self._table(data, "sweep", {}))
        if self.sweep.factors and self.kind is SL:
            raise self.fail("sweep", "a sweep in a suite of datasets",
                            "a [sweep] in a suite of envs (DQN runs)")
        tasks = self._list(matrix, self.kind.items, str, None, required=True)
        specs = self._tasks(tasks)
        axes = self._axes(matrix)
        if self.sweep.factors and "rram" not in axes[0]:
            raise self.fail("sweep", "a sweep varies rram runs and matrix.backends has none",
                            'matrix.backends including "rram"')
        overrides = self._overrides(self._table(data, self.kind.overrides, {}), tasks)
        entries: list[Entry] = []
        for task in tasks:
            task_budget, task_settings = overrides.get(task, ({}, {}))
            merged_budget = {**budget, **task_budget}
            merged_settings = {**settings, **task_settings}
            expand = self._expand if self.kind is DQN else self._expand_sl
            entries += expand(task, specs[task], *axes, merged_budget, merged_settings,
                              settings, task_settings)
        names = [e.name for e in entries]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:  # cannot happen with validated distinct lists; a guard for the future
            raise self.fail("matrix", f"runs {duplicates} would share a directory",
                            "distinct configurations")
        same: dict[Any, list[str]] = {}
        for e in entries:
            same.setdefault(e.config, []).append(e.name)
        for runs in same.values():
            if len(runs) > 1:  # e.g. a sweep point that is another matrix entry's configuration
                raise self.fail("sweep" if self.sweep.factors else "matrix",
                                f"runs {runs} would be the same configuration",
                                "each configuration once (a sweep varies one factor of each "
                                "matrix entry; list a value in one place)")
        return Suite(name=name, description=description, path=self.path, entries=tuple(entries),
                     kind=self.kind.name)

    def _tasks(self, tasks: list[str]) -> dict[str, Any]:
        """The env specs of a DQN suite's envs (each env once); a supervised suite's datasets."""
        if self.kind is SL:
            for dataset in tasks:
                if dataset not in DATASETS:
                    raise self.fail("matrix.datasets", f"{dataset!r} is not known",
                                    f"among {', '.join(DATASETS)}")
            return {dataset: dataset for dataset in tasks}
        specs = {}
        for env in tasks:
            try:
                specs[env] = resolve_env(env)
            except ValueError as err:  # its message suggests names and says what is allowed
                raise SuiteError(f"{self.path}: matrix.envs: {env!r} cannot be used: {err}") from None
        ids = [specs[e].env_id for e in tasks]
        for env in tasks:
            if ids.count(specs[env].env_id) > 1:
                raise self.fail("matrix.envs", f"{env!r} names {specs[env].env_id} more than once",
                                "each environment once")
        return specs

    def _axes(self, matrix: dict[str, Any]) -> tuple:
        """The matrix's lists besides the tasks, in the order `_expand` / `_expand_sl` take."""
        backends = self._list(matrix, "backends", str, BACKENDS)
        if self.sweep.factors and "rram" not in backends:
            raise self.fail("sweep", "a sweep varies rram runs and matrix.backends has none",
                            'matrix.backends including "rram"')
        presets = self._list(matrix, "presets", str, tuple(PRESETS))
        schemes = self._list(matrix, "schemes", str, TUNING_SCHEMES) if "schemes" in matrix else None
        seeds = self._list(matrix, "seeds", int, None)
        for seed in seeds:
            if not 0 <= seed < 2**31:
                raise self.fail("matrix.seeds", f"{seed} is out of range",
                                "integers in [0, 2**31)")
        if self.kind is DQN:
            return backends, presets, self._list(matrix, "mappings", str, MAPPINGS), schemes, seeds
        networks = self._list(matrix, "networks", str, NETWORKS) if "networks" in matrix else [None]
        modes = self._list(matrix, "update_modes", str, ("auto", *UPDATE_MODES))
        return networks, backends, presets, schemes, modes, seeds

    def _overrides(self, tables: dict[str, Any], tasks: list[str]) -> dict[str, tuple[dict, dict]]:
        """{task: (budget, settings)} of the per-task tables ([env.X] / [dataset.X])."""
        keys = self.kind.budget_keys + ("settings",)
        overrides: dict[str, tuple[dict, dict]] = {}
        for task, table in tables.items():
            key = f"{self.kind.overrides}.{_key(task)}"
            if task not in tasks:
                raise self.fail(key, f"{task!r} is not in matrix.{self.kind.items}",
                                f"one of {', '.join(map(repr, tasks))} (as written there)")
            if not isinstance(table, dict):
                raise self.fail(key, f"{table!r} is not a table", f"a table with keys "
                                f"{', '.join(keys)}")
            self._keys(table, keys, key)
            task_settings = self._settings(self._table(table, "settings", {}, key),
                                           f"{key}.settings")
            overrides[task] = (self._budget({k: v for k, v in table.items() if k != "settings"},
                                            key), task_settings)
        return overrides

    def _keys(self, table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in allowed:
                full = f"{where}.{_key(key)}" if where else _key(key)
                raise self.fail(full, "unknown key", ", ".join(allowed))

    def _table(self, data: dict[str, Any], key: str, default: Any = None,
               where: str = "") -> dict[str, Any]:
        full = f"{where}.{key}" if where else key
        if key not in data:
            return default
        value = data[key]
        if not isinstance(value, dict):
            raise self.fail(full, f"{value!r} is not a table", f"a [{full}] table")
        return value

    def _list(self, matrix: dict[str, Any], key: str, kind: type, choices: tuple[str, ...] | None,
              required: bool = False) -> list[Any]:
        full = f"matrix.{key}"
        kind_text = "strings" if kind is str else "integers"
        allowed = (f"a non-empty list of distinct {kind_text} among {', '.join(choices)}"
                   if choices else f"a non-empty list of distinct {kind_text}")
        if key not in matrix:
            if required:
                raise self.fail(full, "missing", allowed)
            return list(MATRIX_DEFAULTS[key])
        value = matrix[key]
        if not isinstance(value, list):
            raise self.fail(full, f"{value!r} is a {_type(value)}, not a list", allowed)
        if not value:
            raise self.fail(full, "the list is empty", allowed)
        for item in value:
            if not isinstance(item, kind) or isinstance(item, bool):
                raise self.fail(full, f"{item!r} is a {_type(item)}", allowed)
            if choices is not None and item not in choices:
                raise self.fail(full, f"{item!r} is not known", allowed)
        if len(set(value)) != len(value):
            raise self.fail(full, f"{value!r} has duplicates", allowed)
        return list(value)

    def _budget(self, table: dict[str, Any], where: str) -> dict[str, int]:
        keys = self.kind.budget_keys
        self._keys(table, keys if where == "budget" else keys + ("settings",), where)
        out = {}
        for key, value in table.items():
            minimum = 0 if key == "eval_episodes" else 1
            allowed = ("an integer >= 0 (0 = no evaluation)" if minimum == 0
                       else f"a positive integer ({self.kind.unit})")
            if not isinstance(value, int) or isinstance(value, bool):
                raise self.fail(f"{where}.{key}", f"{value!r} is a {_type(value)}", allowed)
            if value < minimum:
                raise self.fail(f"{where}.{key}", f"{value} is not allowed", allowed)
            out[key] = value
        return out

    def _settings(self, table: dict[str, Any], where: str) -> dict[str, Any]:
        allowed = ('"section.key" = value pairs forwarded as --set, e.g. "agent.hidden" = [32, 32], '
                   '"device.c2c_sigma" = 0.01')
        for key, value in table.items():
            full = f"{where}.{_key(key)}"
            section, dot, name = key.partition(".")
            if not dot or not section or not name:
                if isinstance(value, dict):
                    hint = (f"{value!r} is a table (write the key in quotes, "
                            f'"{key}.<name>" = value)')
                else:
                    hint = "not of the form section.key"
                raise self.fail(full, hint, allowed)
            owned = self.kind.owned
            if key in owned:
                raise self.fail(full, f"set by {owned[key]}, not by settings",
                                f"put it in {owned[key]}")
        return dict(table)

    def _sweep(self, table: dict[str, Any]) -> Sweep:
        owned = {k: v for k, v in OWNED_SETTINGS.items() if k not in SWEPT_OWNED}
        try:
            return parse_sweep(table, owned)
        except ConfigError as err:
            raise SuiteError(f"{self.path}: {err}") from None

    # -- expansion ----------------------------------------------------------------------------

    def _expand(self, env: str, spec, backends, presets, mappings, schemes, seeds,
                budget: dict[str, int], settings: dict[str, Any], suite_settings: dict[str, Any],
                env_settings: dict[str, Any]) -> list[Entry]:
        entries: list[Entry] = []
        seen: set[tuple] = set()
        for backend, preset_name, mapping in itertools.product(backends, presets, mappings):
            scheme_list = schemes or [named_preset(preset_name).hardware.tuning.scheme]
            for scheme in scheme_list:
                labels = run_labels(backend, preset_name, mapping, scheme)
                if (backend,) + labels in seen:   # float: presets/schemes/time~separate collapse
                    continue
                seen.add((backend,) + labels)
                run_mapping = "shared" if labels[1] == "shared" else (
                    "time" if backend == "float" else mapping)
                per_seed: list[list[Entry]] = []
                for seed in seeds:
                    matrix = [("run.env", env), ("run.backend", backend),
                              ("run.mapping", run_mapping), ("run.seed", seed)]
                    if backend == "rram":
                        matrix += [("run.preset", preset_name), ("tuning.scheme", scheme)]
                    matrix += [(f"run.{key}", budget[key]) for key in BUDGET_KEYS if key in budget]
                    cfg = self._resolve(env, matrix, budget, settings, suite_settings,
                                        env_settings)
                    base = [*matrix, *settings.items()]
                    run = (spec, env, backend, labels, seed)
                    if backend != "rram" or not self.sweep.factors:
                        per_seed.append([_entry(run, base, cfg)])
                        continue
                    axes, variants = self.sweep.expand(
                        cfg, lambda point: self._resolve_point(env, _varied(base, point), point))
                    per_seed.append([_entry(run, base, cfg, "", axes)] + [
                        _entry(run, _varied(base, point), config, point.factor,
                               {**axes, point.factor: point.value})
                        for point, config in variants])
                entries += [e for runs in zip(*per_seed) for e in runs]  # seeds of a run together
        return entries

    def _resolve_point(self, env: str, settings: list[tuple[str, Any]], point: Point) -> RunConfig:
        """The configuration of a sweep point's run; refused, the point is named."""
        try:
            return resolve(settings)
        except ConfigError as err:
            raise SuiteError(f"{self.path}: sweep.{_key(point.factor)}: "
                             f"{format_value(point.value)}: a run of {env!r} would be refused: "
                             f"{err}") from None

    def _expand_sl(self, dataset: str, _, networks, backends, presets, schemes, modes, seeds,
                   budget: dict[str, int], settings: dict[str, Any],
                   suite_settings: dict[str, Any], dataset_settings: dict[str, Any]
                   ) -> list[Entry]:
        """The supervised entries of one dataset; float collapses preset, scheme and mode."""
        entries: list[Entry] = []
        seen: set[tuple] = set()
        for network, backend, preset_name, mode in itertools.product(networks, backends, presets,
                                                                     modes):
            for scheme in schemes or [named_preset(preset_name).hardware.tuning.scheme]:
                labels = ((preset_name, scheme, mode) if backend == "rram"
                          else (NOT_APPLICABLE,) * 3)
                if (network, backend) + labels in seen:
                    continue
                seen.add((network, backend) + labels)
                for seed in seeds:
                    matrix = [("run.dataset", dataset), ("run.backend", backend),
                              ("run.seed", seed)]
                    matrix += [("train.network", network)] if network is not None else []
                    if backend == "rram":
                        matrix += [("run.preset", preset_name), ("tuning.scheme", scheme),
                                   ("run.update_mode", mode)]
                    matrix += [(f"run.{k}", budget[k]) for k in SL_BUDGET_KEYS if k in budget]
                    cfg = self._resolve(dataset, matrix, budget, settings, suite_settings,
                                        dataset_settings)
                    net = cfg.train.network
                    hardware = labels if backend == "rram" else ()
                    entries.append(Entry(
                        name="-".join([dataset, net, backend, *hardware, f"s{seed}"]),
                        env=dataset, env_name=f"{dataset}-{net}", env_id=f"{dataset}/{net}",
                        backend=backend, preset=labels[0], mapping=NOT_APPLICABLE,
                        scheme=labels[1], seed=seed, total_steps=cfg.epochs,
                        argv=tuple(sl_config.SCHEMA.to_argv([*matrix, *settings.items()])),
                        config=cfg, kind="sl", mode=labels[2]))
        return entries

    def _resolve(self, task: str, matrix: list[tuple[str, Any]], budget: dict[str, int],
                 settings: dict[str, Any], suite_settings: dict[str, Any],
                 task_settings: dict[str, Any]) -> RunConfig | SLConfig:
        """The run's configuration; if it is refused, name the setting refused on its own."""
        resolver = sl_config.resolve if self.kind is SL else resolve
        try:
            return resolver([*matrix, *settings.items()])
        except ConfigError as err:
            problem = f"a run of {task!r} would be refused: {err}"
        for table, values in ((f"{self.kind.overrides}.{_key(task)}.settings", task_settings),
                              ("settings", suite_settings)):
            for key, value in values.items():
                try:
                    resolver([*matrix, (key, value)])
                except ConfigError:
                    raise SuiteError(f"{self.path}: {table}.{_key(key)}: {problem}") from None
        raise SuiteError(f"{self.path}: {'budget' if budget else 'settings'}: {problem}")


def _entry(run: tuple, settings: list[tuple[str, Any]], config: RunConfig, factor: str = "",
           axes: dict[str, Any] | None = None) -> Entry:
    """The entry of `run` = (env spec, env as written, backend, labels, seed) with these settings
    and their configuration; a sweep variant if `factor` is given."""
    spec, env, backend, labels, seed = run
    axes = axes or {}
    return Entry(name=run_name(spec.name, backend, *labels, seed,
                               variant_label(factor, axes.get(factor))),
                 env=env, env_name=spec.name, env_id=spec.env_id, backend=backend,
                 preset=labels[0], mapping=labels[1], scheme=labels[2], seed=seed,
                 total_steps=config.total_steps, argv=tuple(to_argv(settings)), config=config,
                 factor=factor, axes=tuple(axes.items()))


def _varied(settings: list[tuple[str, Any]], point: Point) -> list[tuple[str, Any]]:
    """`settings` with the point's settings instead of any they had for the same keys."""
    keys = {key for key, _ in point.settings}
    return [(k, v) for k, v in settings if k not in keys] + list(point.settings)


def _key(key: str) -> str:
    """A key as written in TOML (quoted when it is not a bare key)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'


def _type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "list",
            dict: "table"}.get(type(value), type(value).__name__)
