"""The resolved configuration of one training run, its defaults and its TOML form.

Defaults come from `experiments/hyperparams.toml` (per env id; `[atari]` for every ALE game,
`[default]` otherwise) and are overridden by command-line flags. `config.toml` in the run
directory holds the resolved configuration, enough to re-run: `[run]`, `[agent]`,
`[hardware]` and `[protocol]` tables.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tomli_w

from agents.config import DQNConfig
from experiments import HYPERPARAMS, bundled
from envs import EnvSpec

from rlime.common.files import tomllib
from rlime.common.errors import ConfigError
from rlime.hw.config import HardwareConfig, PRESETS, preset
from rlime.drl.mappings import MAPPINGS

BACKENDS = ("rram", "float")


@dataclass(frozen=True)
class RunConfig:
    """One run. Step counts are environment steps summed over the parallel envs."""

    env: str
    backend: str = "rram"
    mapping: str = "time"
    preset: str = "default"
    energy_preset: str = "default"
    total_steps: int = 100_000
    seed: int = 1
    num_envs: int = 1
    device: str = "cpu"
    eval_every: int = 10_000
    eval_episodes: int = 10
    eval_epsilon: float = 0.001   # Dopamine's evaluation epsilon
    checkpoint_every: int = 10_000
    terminal_on_life_loss: bool = False
    agent: DQNConfig = field(default_factory=DQNConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"run.{name} = {getattr(self, name)!r} is not allowed: {allowed}")
        check(self.backend in BACKENDS, "backend", f"one of {', '.join(BACKENDS)}")
        check(self.mapping in MAPPINGS, "mapping", f"one of {', '.join(MAPPINGS)}")
        check(self.preset in PRESETS, "preset", f"one of {', '.join(PRESETS)}")
        for name in ("total_steps", "num_envs", "eval_every", "checkpoint_every"):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 1, name, "an integer >= 1")
        check(isinstance(self.eval_episodes, int) and self.eval_episodes >= 0, "eval_episodes",
              "an integer >= 0 (0 = no evaluation)")
        check(isinstance(self.seed, int) and 0 <= self.seed < 2**31, "seed", "an integer in [0, 2**31)")
        check(0 <= self.eval_epsilon <= 1, "eval_epsilon", "a probability in [0, 1]")

    def to_toml(self, spec: EnvSpec) -> str:
        run = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("agent", "hardware")}
        run["env_id"] = spec.env_id
        data = {"run": run, "agent": dataclasses.asdict(self.agent),
                "hardware": _toml_safe(self.hardware.to_dict()), "protocol": spec.protocol}
        return tomli_w.dumps(data)

    @classmethod
    def from_toml(cls, text: str) -> "RunConfig":
        data = tomllib.loads(text)
        run = dict(data["run"])
        run.pop("env_id", None)
        known = {f.name for f in dataclasses.fields(cls)} - {"agent", "hardware"}
        unknown = set(run) - known
        if unknown:
            raise ConfigError(f"unknown [run] setting(s) {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**run, agent=DQNConfig.from_dict(data["agent"]),
                   hardware=HardwareConfig.from_dict(data["hardware"]))


def _toml_safe(value: Any) -> Any:
    """TOML has no null: None becomes the string "none" (HardwareConfig.from_dict reads it back)."""
    if isinstance(value, dict):
        return {k: _toml_safe(v) for k, v in value.items()}
    return "none" if value is None else value


def parse_override(text: str) -> tuple[str, Any]:
    """'section.key=value' with a TOML-typed value (strings may be bare)."""
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"--set {text!r} is not of the form section.key=value, e.g. "
                          f"agent.learning_rate=1e-3, device.c2c_sigma=0.01, run.eval_every=5000")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def env_defaults(spec: EnvSpec, path: Path | None = None) -> tuple[dict, dict]:
    """(run defaults, agent defaults) for an env from the hyperparameter file (default: bundled)."""
    table = tomllib.loads(path.read_text() if path is not None else bundled(HYPERPARAMS).read_text())
    key = spec.env_id if spec.env_id in table else ("atari" if spec.is_atari else "default")
    entry = table[key]
    return dict(entry.get("run", {})), dict(entry.get("agent", {}))


def resolve(spec: EnvSpec, env: str, flags: Mapping[str, Any],
            overrides: list[tuple[str, Any]]) -> RunConfig:
    """Merge env defaults, flags (None = not given) and --set overrides into a RunConfig."""
    run, agent = env_defaults(spec)
    hw_overrides: dict[str, Any] = {}
    for key, value in overrides:
        section, _, name = key.partition(".")
        if section == "run":
            run[name] = value
        elif section == "agent":
            agent[name] = value
        else:
            hw_overrides[key] = value
    for name, value in flags.items():
        if value is None:
            continue
        if name in {f.name for f in dataclasses.fields(DQNConfig)}:
            agent[name] = value
        else:
            run[name] = value
    run.setdefault("energy_preset", run.get("preset", "default"))
    run.setdefault("checkpoint_every", run.get("eval_every", 10_000))
    hardware = preset(run.get("preset", "default"))
    if hw_overrides:
        hardware = hardware.with_overrides(hw_overrides)
    return RunConfig(env=env, agent=DQNConfig.from_dict(agent), hardware=hardware, **run)

