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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator


from agents.config import DQNConfig
from experiments import HYPERPARAMS, bundled
from envs import EnvSpec, resolve_env

from rlime.common.errors import require
from rlime.common.files import tomllib
from rlime.drl.mappings import MAPPINGS
from rlime.harness.pipeline import (BACKENDS, Schema, check_run, config_from_toml, config_toml,
                                    device_choices, flag, mode_in_effect)
from rlime.hw.config import SECTIONS as HARDWARE_SECTIONS, HardwareConfig

__all__ = ["BACKENDS", "RunConfig", "SCHEMA", "SECTIONS", "FOLLOWS", "FLAGS", "device_choices",
           "flag", "parse_value", "parse_override", "to_argv", "env_defaults",
           "env_default_keys", "resolve", "describe"]


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
    rescale_observations: bool = False  # vector obs: each feature from its bounds onto [-1, 1]
    agent: DQNConfig = field(default_factory=DQNConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    def __post_init__(self) -> None:
        check_run(self, "agent", positive=("total_steps", "num_envs", "eval_every",
                                           "checkpoint_every"))
        require(self.mapping in MAPPINGS, "run.mapping", self.mapping,
                f"one of {', '.join(MAPPINGS)}")
        require(self.probe_every >= 0, "run.probe_every", self.probe_every,
                "an integer >= 0 (0 = no device probes)")
        require(self.eval_episodes >= 0, "run.eval_episodes", self.eval_episodes,
                "an integer >= 0 (0 = no evaluation)")
        require(0 <= self.eval_epsilon <= 1, "run.eval_epsilon", self.eval_epsilon,
                "a probability in [0, 1]")

    @property
    def mode_in_effect(self) -> str:
        """How updates reach the cells (`rlime.harness.pipeline.mode_in_effect`)."""
        return mode_in_effect(self.agent.update_rule, self.hardware.tuning.residual)

    def to_toml(self, spec: EnvSpec) -> str:
        return config_toml(self, "agent", spec.protocol, env_id=spec.env_id)

    @classmethod
    def from_toml(cls, text: str) -> "RunConfig":
        return config_from_toml(cls, "agent", DQNConfig, text, derived=("env_id",))


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


SCHEMA = Schema(SECTIONS, "agent", FLAGS, FOLLOWS, aliases={"agent.learning_rate": ("--lr",)})
parse_value, parse_override, to_argv = SCHEMA.parse_value, SCHEMA.parse_override, SCHEMA.to_argv


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
    return SCHEMA.resolve(settings, *env_defaults(resolve_env(env)))


def describe(cfg: RunConfig) -> Iterator[tuple[str, Any, str]]:
    """(key, value in cfg, help with the type allowed) of every setting."""
    return SCHEMA.describe(cfg, skip=("run.env",))
