"""The resolved configuration of one training run: one pipeline from settings to `RunConfig`.

Every setting is a dataclass field named `section.key` (sections `run`, `agent` and the
hardware's `device`, `tile`, `forward`, `backward`, `tuning`). `resolve` layers, later winning:
the env's defaults from `experiments/hyperparams.toml` (per env id; `[atari]` for every ALE
game, `[default]` otherwise), then the given (key, value) pairs: the train CLI's flags and
`--set`s, or a suite's matrix, budget and settings. The CLI's flags are shorthands for
`FLAGS`' keys. `config.toml` in the run directory holds the resolved configuration, enough to
re-run: `[run]`, `[agent]`, `[hardware]` and `[protocol]` tables.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import tomli_w
import torch

from agents.config import DQNConfig
from experiments import HYPERPARAMS, bundled
from envs import EnvSpec, resolve_env

from rlime.common.errors import ConfigError, require
from rlime.common.files import tomllib
from rlime.common.settings import build, check_types, field_help, field_types, toml_value, type_name
from rlime.cost.energy import PRESETS, preset
from rlime.drl.mappings import MAPPINGS
from rlime.hw.config import SECTIONS as HARDWARE_SECTIONS, HardwareConfig

BACKENDS = ("rram", "float")
# How an update reaches the cells. "time": TIME's rule, plain SGD tuned into the arrays with no
# digital residual (Cheng et al., DAC 2017); "mixed-precision": the rule's result accumulates in
# a digital fp32 residual per weight and only whole levels are tuned (Nandakumar et al. 2018;
# aihwkit's MixedPrecisionCompound), any update rule. Chosen, a mode fixes these settings over
# the env's defaults and the preset; "auto" leaves them as they are (`RunConfig.mode_in_effect`).
UPDATE_MODES: dict[str, dict[str, Any]] = {
    "time": {"agent.update_rule": "sgd", "tuning.residual": False},
    "mixed-precision": {"tuning.residual": True},
}


@dataclass(frozen=True)
class RunConfig:
    """One run. Step counts are environment steps summed over the parallel envs."""

    env: str                        # short name (CartPole, Pong, Breakout, ...) or Gymnasium id
    backend: str = "rram"           # rram, or float (plain PyTorch)
    mapping: str = "time"           # DRL mapping: where target network and replay live
    preset: str = "default"         # hardware preset, with its energy prices
    energy_preset: str = "default"  # the preset whose energy prices are charged
    total_steps: int = 100_000      # environment steps (summed over envs)
    seed: int = 1                   # random seed
    num_envs: int = 1               # parallel environments
    device: str = "cpu"             # torch device
    threads: int = 0                # torch CPU threads (0: OMP_NUM_THREADS, else physical cores)
    eval_every: int = 10_000        # steps between evaluation rounds
    eval_episodes: int = 10         # episodes per evaluation round (0 = none)
    eval_epsilon: float = 0.001     # Dopamine's evaluation epsilon
    checkpoint_every: int = 10_000  # steps between checkpoints
    checkpoint_replay: bool = True  # checkpoints hold the replay (exact resume; false: refilled)
    probe_every: int = 1000         # steps between device probes (probes.jsonl, device/...; 0 = none)
    update_mode: str = "auto"  # time (plain SGD, no residual), mixed-precision, or auto
    terminal_on_life_loss: bool = False  # Atari: a lost life ends the training episode (not the logged game)
    agent: DQNConfig = field(default_factory=DQNConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    def __post_init__(self) -> None:
        check_types(self, "run")
        require(self.backend in BACKENDS, "run.backend", self.backend,
                f"one of {', '.join(BACKENDS)}")
        require(self.mapping in MAPPINGS, "run.mapping", self.mapping,
                f"one of {', '.join(MAPPINGS)}")
        for name in ("preset", "energy_preset"):
            require(getattr(self, name) in PRESETS, f"run.{name}", getattr(self, name),
                    f"one of {', '.join(PRESETS)}")
        for name in ("total_steps", "num_envs", "eval_every", "checkpoint_every"):
            require(getattr(self, name) >= 1, f"run.{name}", getattr(self, name),
                    "an integer >= 1")
        require(self.probe_every >= 0, "run.probe_every", self.probe_every,
                "an integer >= 0 (0 = no device probes)")
        require(self.threads >= 0, "run.threads", self.threads,
                "an integer >= 1, or 0 (OMP_NUM_THREADS if set, else the physical cores)")
        devices = device_choices()
        require(self.device in devices, "run.device", self.device,
                f"a torch device of this machine: {', '.join(devices)}")
        require(self.eval_episodes >= 0, "run.eval_episodes", self.eval_episodes,
                "an integer >= 0 (0 = no evaluation)")
        require(0 <= self.seed < 2**31, "run.seed", self.seed, "an integer in [0, 2**31)")
        require(0 <= self.eval_epsilon <= 1, "run.eval_epsilon", self.eval_epsilon,
                "a probability in [0, 1]")
        require(self.update_mode == "auto" or self.update_mode in UPDATE_MODES, "run.update_mode",
                self.update_mode, f"one of auto, {', '.join(UPDATE_MODES)}")
        for key, value in UPDATE_MODES.get(self.update_mode, {}).items():
            section, _, name = key.partition(".")
            holder = self.agent if section == "agent" else getattr(self.hardware, section)
            require(getattr(holder, name) == value, key, getattr(holder, name),
                    f"{toml_value(value)}: run.update_mode = {self.update_mode!r} means "
                    + ", ".join(f"{k} = {toml_value(v)}" for k, v in
                                UPDATE_MODES[self.update_mode].items()))

    @property
    def mode_in_effect(self) -> str:
        """How updates reach the cells: "mixed-precision" with a residual, "time" for plain SGD
        without one, "other" for a stateful rule without one."""
        if self.hardware.tuning.residual:
            return "mixed-precision"
        return "time" if self.agent.update_rule == "sgd" else "other"

    def to_toml(self, spec: EnvSpec) -> str:
        run = {name: getattr(self, name) for name in field_types(RunConfig)}
        run["env_id"] = spec.env_id
        data = {"run": run, "agent": dataclasses.asdict(self.agent),
                "hardware": _toml_safe(self.hardware.to_dict()), "protocol": spec.protocol}
        return tomli_w.dumps(data)

    @classmethod
    def from_toml(cls, text: str) -> "RunConfig":
        data = tomllib.loads(text)
        run = dict(data["run"])
        run.pop("env_id", None)
        return build(cls, "run", run, agent=DQNConfig.from_dict(data["agent"]),
                     hardware=HardwareConfig.from_dict(data["hardware"]))


def device_choices() -> list[str]:
    """The torch devices this machine has: cpu, cuda and cuda:N per GPU, mps."""
    choices = ["cpu"]
    if torch.cuda.is_available():
        choices += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        choices.append("mps")
    return choices


# every section of settings and the dataclass whose fields are its keys
SECTIONS = {"run": RunConfig, "agent": DQNConfig, **HARDWARE_SECTIONS}
# settings that follow another one unless given themselves
FOLLOWS = {"run.energy_preset": "run.preset", "run.checkpoint_every": "run.eval_every"}
# the settings `python -m rlime.train` has a flag for (--total-steps for run.total_steps, ...)
FLAGS = ("run.env", "run.backend", "run.mapping", "run.preset", "run.energy_preset",
         "tuning.scheme", "run.total_steps", "run.seed", "run.num_envs", "run.device",
         "run.threads", "run.eval_every", "run.eval_episodes", "run.checkpoint_every",
         "agent.double_dqn", "run.update_mode", "agent.update_rule", "agent.learning_rate",
         "run.terminal_on_life_loss")


def flag(key: str) -> str:
    """The train CLI's flag of a setting in FLAGS: "tuning.scheme" -> "--scheme"."""
    return "--" + key.partition(".")[2].replace("_", "-")


def _toml_safe(value: Any) -> Any:
    """TOML has no null: None becomes the string "none" (read back as None)."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items()}
    return "none" if value is None else value


def _hint(key: str) -> Any:
    section, _, name = key.partition(".")
    return field_types(SECTIONS[section]).get(name) if section in SECTIONS else None


def parse_value(key: str, text: str) -> Any:
    """A flag's or `--set`'s text as a value for `key`: TOML, or the bare text (strings)."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    return text if _hint(key) is str and not isinstance(value, str) else value


def parse_override(text: str) -> tuple[str, Any]:
    """'section.key=value' with a TOML-typed value (strings may be bare)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or "." not in key:
        raise ConfigError(f"--set {text!r} is not of the form section.key=value, e.g. "
                          f"agent.learning_rate=1e-3, device.c2c_sigma=0.01, run.eval_every=5000")
    return key, parse_value(key, raw)


def to_argv(settings: Iterable[tuple[str, Any]]) -> list[str]:
    """`python -m rlime.train` arguments that resolve to the same configuration."""
    argv: list[str] = []
    for key, value in settings:
        if key in FLAGS and _hint(key) is bool:
            argv += [flag(key)] if value else ["--set", f"{key}=false"]
        elif key in FLAGS:
            argv += [flag(key), value if isinstance(value, str) else toml_value(value)]
        else:
            argv += ["--set", f"{key}={toml_value(value)}"]
    return argv


def env_defaults(spec: EnvSpec, path: Path | None = None) -> tuple[dict, dict]:
    """(run defaults, agent defaults) for an env from the hyperparameter file (default: bundled)."""
    table = _hyperparams(path)
    entry = table[spec.defaults_key(table)]
    return dict(entry.get("run", {})), dict(entry.get("agent", {}))


def env_default_keys() -> set[str]:
    """The settings some env's defaults give (their value depends on --env)."""
    return {f"{section}.{key}" for entry in _hyperparams().values()
            for section in ("run", "agent") for key in entry.get(section, {})}


def _hyperparams(path: Path | None = None) -> dict[str, Any]:
    return tomllib.loads(path.read_text() if path is not None else bundled(HYPERPARAMS).read_text())


def resolve(settings: Iterable[tuple[str, Any]]) -> RunConfig:
    """The RunConfig of (key, value) settings over the env's defaults (`run.env` is required)."""
    settings = list(settings)
    env = dict(settings).get("run.env")
    require(isinstance(env, str), "run.env", env, "an env: a short name or Gymnasium id")
    run, agent = env_defaults(resolve_env(env))
    values: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    layers = [*((f"run.{k}", v) for k, v in run.items()),
              *((f"agent.{k}", v) for k, v in agent.items()), *settings]
    for key, value in layers:
        section, _, name = key.partition(".")
        if section not in values:
            raise ConfigError(f"unknown setting {key!r}; allowed sections are "
                              f"{', '.join(SECTIONS)} (e.g. device.c2c_sigma=0.01)")
        values[section][name] = value
    # the update mode's settings win over the env's defaults; given explicitly, they must agree
    mode = values["run"].get("update_mode", RunConfig.update_mode)
    given = {key for key, _ in settings}
    for key, value in UPDATE_MODES.get(mode, {}).items():
        section, _, name = key.partition(".")
        if key not in given:
            values[section][name] = value
    run, agent = values.pop("run"), values.pop("agent")
    for key, leader in FOLLOWS.items():
        name, lead = key.partition(".")[2], leader.partition(".")[2]
        run.setdefault(name, run.get(lead, getattr(RunConfig, lead)))
    run_preset = run.get("preset", RunConfig.preset)
    require(run_preset in PRESETS, "run.preset", run_preset, f"one of {', '.join(PRESETS)}")
    hardware = preset(run_preset).hardware.with_overrides(
        {f"{section}.{k}": v for section, table in values.items() for k, v in table.items()})
    return build(RunConfig, "run", run, agent=DQNConfig.from_dict(agent), hardware=hardware)

def describe(cfg: RunConfig) -> Iterator[tuple[str, Any, str]]:
    """(key, value in cfg, help with the type allowed) of every setting."""
    objects = {"run": cfg, "agent": cfg.agent,
               **{section: getattr(cfg.hardware, section) for section in HARDWARE_SECTIONS}}
    for section, obj in objects.items():
        helps = field_help(type(obj))
        for name, hint in field_types(type(obj)).items():
            if (section, name) != ("run", "env"):
                text = f"{helps.get(name, '')} [{type_name(hint)}]".lstrip()
                yield f"{section}.{name}", getattr(obj, name), text
