"""The settings pipeline every training command shares: (key, value) settings -> a typed
configuration, and the command-line flags that spell them.

A command's configuration is a `run` dataclass holding one dataclass of its own (`agent` for
DQN, `rlime.harness.run_config`; `train` for supervised learning, `rlime.sl.config`) and the
hardware (`device`, `tile`, `forward`, `backward`, `tuning`); every setting is a field named
`section.key`. A `Schema` names the sections, the section whose `update_rule` the update mode
sets, the flags the command has, and the settings that follow another one unless given. The
pipeline layers, later winning: the command's defaults (per env or per dataset, from a TOML
file of experiments/), then the flags and `--set`s (or a suite's matrix, budget and settings);
an update mode's settings win over the defaults; the hardware is the preset's with the
hardware sections' settings over it.

Nothing here imports RL code.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import tomli_w
import torch

from rlime.common.errors import ConfigError, require
from rlime.common.files import tomllib
from rlime.common.settings import (build, check_types, field_help, field_types, toml_value,
                                   type_name)
from rlime.cost.energy import PRESETS, preset
from rlime.hw.config import HardwareConfig

BACKENDS = ("rram", "float")
# How an update reaches the cells. "time": TIME's rule, plain SGD tuned into the arrays with no
# digital residual (Cheng et al., DAC 2017); "mixed-precision": the rule's result accumulates in
# a digital fp32 residual per weight and only whole levels are tuned (Nandakumar et al. 2018;
# aihwkit's MixedPrecisionCompound), any update rule. Chosen, a mode fixes these settings
# (`update_rule` in the schema's rule section) over the defaults and the preset; "auto" leaves
# them as they are (`mode_in_effect`).
UPDATE_MODES: dict[str, dict[str, Any]] = {
    "time": {"update_rule": "sgd", "tuning.residual": False},
    "mixed-precision": {"tuning.residual": True},
}


def mode_in_effect(update_rule: str, residual: bool) -> str:
    """How updates reach the cells: "mixed-precision" with a residual, "time" for plain SGD
    without one, "other" for a stateful rule without one."""
    if residual:
        return "mixed-precision"
    return "time" if update_rule == "sgd" else "other"


def device_choices() -> list[str]:
    """The torch devices this machine has: cpu, cuda and cuda:N per GPU, mps."""
    choices = ["cpu"]
    if torch.cuda.is_available():
        choices += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        choices.append("mps")
    return choices


def toml_safe(value: Any) -> Any:
    """TOML has no null: None becomes the string "none" (read back as None)."""
    if isinstance(value, dict):
        return {k: toml_safe(v) for k, v in value.items()}
    return "none" if value is None else value


def config_toml(cfg: Any, rule_section: str, protocol: Mapping[str, Any],
                **run_extra: Any) -> str:
    """config.toml of a run: `[run]` (its fields and `run_extra`), the rule section, `[hardware]`
    and `[protocol]` (what results depend on: the env's or the dataset's)."""
    run = {name: getattr(cfg, name) for name in field_types(type(cfg))}
    run.update(run_extra)
    return tomli_w.dumps({"run": run, rule_section: dataclasses.asdict(getattr(cfg, rule_section)),
                          "hardware": toml_safe(cfg.hardware.to_dict()),
                          "protocol": dict(protocol)})


def config_from_toml(kind: type, rule_section: str, rule_kind: type, text: str,
                     derived: tuple[str, ...] = ()) -> Any:
    """The `kind` run configuration a config.toml holds (`derived`: `[run]` keys written for
    people, not settings)."""
    data = tomllib.loads(text)
    run = {k: v for k, v in data["run"].items() if k not in derived}
    return build(kind, "run", run, **{rule_section: rule_kind.from_dict(data[rule_section])},
                 hardware=HardwareConfig.from_dict(data["hardware"]))


def mode_settings(mode: str, rule_section: str) -> dict[str, Any]:
    """The settings update mode `mode` fixes, as `section.key` ({} for "auto"); the update
    rule is in section `rule_section`."""
    return {key if "." in key else f"{rule_section}.{key}": value
            for key, value in UPDATE_MODES.get(mode, {}).items()}


def check_run(cfg: Any, rule_section: str, positive: tuple[str, ...] = ()) -> None:
    """The checks every run section shares: every field's type, the `positive` counts (>= 1),
    backend, presets, threads, device, seed, and that an update mode's settings hold (the
    update rule in `cfg.<rule_section>`)."""
    check_types(cfg, "run")
    for name in positive:
        require(getattr(cfg, name) >= 1, f"run.{name}", getattr(cfg, name), "an integer >= 1")
    require(cfg.backend in BACKENDS, "run.backend", cfg.backend, f"one of {', '.join(BACKENDS)}")
    for name in ("preset", "energy_preset"):
        require(getattr(cfg, name) in PRESETS, f"run.{name}", getattr(cfg, name),
                f"one of {', '.join(PRESETS)}")
    require(cfg.threads >= 0, "run.threads", cfg.threads,
            "an integer >= 1, or 0 (OMP_NUM_THREADS if set, else the physical cores)")
    devices = device_choices()
    require(cfg.device in devices, "run.device", cfg.device,
            f"a torch device of this machine: {', '.join(devices)}")
    require(0 <= cfg.seed < 2**31, "run.seed", cfg.seed, "an integer in [0, 2**31)")
    require(cfg.update_mode == "auto" or cfg.update_mode in UPDATE_MODES, "run.update_mode",
            cfg.update_mode, f"one of auto, {', '.join(UPDATE_MODES)}")
    fixed = mode_settings(cfg.update_mode, rule_section)
    for key, value in fixed.items():
        section, _, name = key.partition(".")
        holder = getattr(cfg, section) if section == rule_section else getattr(cfg.hardware, section)
        require(getattr(holder, name) == value, key, getattr(holder, name),
                f"{toml_value(value)}: run.update_mode = {cfg.update_mode!r} means "
                + ", ".join(f"{k} = {toml_value(v)}" for k, v in fixed.items()))


@dataclass(frozen=True)
class Schema:
    """The settings of one training command: section -> dataclass ("run" first), the section
    whose `update_rule` an update mode sets, the flags of its command line (`flag(key)` spells
    each), settings that follow another one unless given, and extra spellings of flags."""

    sections: Mapping[str, type]
    rule_section: str
    flags: tuple[str, ...]
    follows: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def hint(self, key: str) -> Any:
        section, _, name = key.partition(".")
        return field_types(self.sections[section]).get(name) if section in self.sections else None

    def parse_value(self, key: str, text: str) -> Any:
        """A flag's or `--set`'s text as a value for `key`: TOML, or the bare text (strings)."""
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
        return text if self.hint(key) is str and not isinstance(value, str) else value

    def parse_override(self, text: str) -> tuple[str, Any]:
        """'section.key=value' with a TOML-typed value (strings may be bare)."""
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or "." not in key:
            raise ConfigError(f"--set {text!r} is not of the form section.key=value, e.g. "
                              f"{self.rule_section}.learning_rate=1e-3, device.c2c_sigma=0.01")
        return key, self.parse_value(key, raw)

    def to_argv(self, settings: Iterable[tuple[str, Any]]) -> list[str]:
        """Command-line arguments that resolve to the same configuration."""
        argv: list[str] = []
        for key, value in settings:
            if key in self.flags and self.hint(key) is bool:
                argv += [flag(key)] if value else ["--set", f"{key}=false"]
            elif key in self.flags:
                argv += [flag(key), value if isinstance(value, str) else toml_value(value)]
            else:
                argv += ["--set", f"{key}={toml_value(value)}"]
        return argv

    def values(self, layers: Iterable[tuple[str, Any]], given: set[str]) -> dict[str, dict]:
        """{section: {name: value}} of the layered settings (later wins): the update mode's
        settings over the layers not `given` explicitly, and the followers of `follows` set
        from their leader unless given."""
        values: dict[str, dict[str, Any]] = {section: {} for section in self.sections}
        for key, value in layers:
            section, _, name = key.partition(".")
            if section not in values:
                raise ConfigError(f"unknown setting {key!r}; allowed sections are "
                                  f"{', '.join(self.sections)} (e.g. device.c2c_sigma=0.01)")
            values[section][name] = value
        run_kind = self.sections["run"]
        mode = values["run"].get("update_mode", run_kind.update_mode)
        for key, value in mode_settings(mode, self.rule_section).items():
            section, _, name = key.partition(".")
            if key not in given:
                values[section][name] = value
        run = values["run"]
        for key, leader in self.follows.items():
            name, lead = key.partition(".")[2], leader.partition(".")[2]
            run.setdefault(name, run.get(lead, getattr(run_kind, lead)))
        return values

    def resolve(self, settings: list[tuple[str, Any]], run_defaults: Mapping[str, Any],
                rule_defaults: Mapping[str, Any]) -> Any:
        """The run configuration of `settings` over the defaults of the run and rule sections
        (the env's or the dataset's)."""
        rules = self.rule_section
        layers = [*((f"run.{k}", v) for k, v in run_defaults.items()),
                  *((f"{rules}.{k}", v) for k, v in rule_defaults.items()), *settings]
        values = self.values(layers, given={key for key, _ in settings})
        return build(self.sections["run"], "run", values["run"],
                     **{rules: self.sections[rules].from_dict(values[rules])},
                     hardware=self.hardware(values))

    def hardware(self, values: dict[str, dict]) -> HardwareConfig:
        """The run preset's hardware with the hardware sections of `values` over it."""
        run_preset = values["run"].get("preset", self.sections["run"].preset)
        require(run_preset in PRESETS, "run.preset", run_preset, f"one of {', '.join(PRESETS)}")
        own = ("run", self.rule_section)
        return preset(run_preset).hardware.with_overrides(
            {f"{section}.{k}": v for section, table in values.items() if section not in own
             for k, v in table.items()})

    def default_text(self, key: str, defaulted: set[str], per: str, source: str) -> str:
        """What a flag's setting is when it is not given: `per` (e.g. "per env") from `source`
        for the settings in `defaulted` (those the command's defaults file gives), the leader
        for a follower, the preset's for hardware, else the field's default."""
        if key in self.follows:  # the defaults file may set it; else it follows its leader
            lead = flag(self.follows[key])
            return f"{per}, else {lead}" if key in defaulted else lead
        if key == "run.device":
            return "cuda if available, else cpu"
        section, _, name = key.partition(".")
        if section not in ("run", self.rule_section):
            return "the preset's"
        if key in defaulted:
            return f"{per}, {source}"
        return toml_value(getattr(self.sections[section], name))

    def describe(self, cfg: Any, skip: tuple[str, ...] = ()) -> Iterator[tuple[str, Any, str]]:
        """(key, value in cfg, help with the type allowed) of every setting but `skip`."""
        for section in self.sections:
            obj = cfg if section == "run" else (getattr(cfg, section) if section == self.rule_section
                                                else getattr(cfg.hardware, section))
            helps = field_help(type(obj))
            for name, hint in field_types(type(obj)).items():
                if f"{section}.{name}" not in skip:
                    text = f"{helps.get(name, '')} [{type_name(hint)}]".lstrip()
                    yield f"{section}.{name}", getattr(obj, name), text


def flag(key: str) -> str:
    """The command-line flag of a setting: "tuning.scheme" -> "--scheme"."""
    return "--" + key.partition(".")[2].replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, schema: Schema, required: str,
              default: Callable[[str], str]) -> None:
    """One flag per setting of `schema.flags` (help from the field's comment, `default(key)`
    for what applies when it is not given), then --set and --help-settings; `required` is the
    setting a new run must name."""
    for key in schema.flags:
        section, _, name = key.partition(".")
        text = field_help(schema.sections[section]).get(name, name)
        if key == required:
            parser.add_argument(flag(key), dest=key, metavar="NAME",
                                help=f"{text} (required, or --resume DIR)")
        elif field_types(schema.sections[section])[name] is bool:
            parser.add_argument(flag(key), dest=key, action="store_true", default=None,
                                help=f"{text} ({key}=true)")
        else:
            parser.add_argument(flag(key), *schema.aliases.get(key, ()), dest=key,
                                metavar=name.upper(),
                                help=f"{text} ({key}; default: {default(key)})")
    rules = schema.rule_section
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"any setting, e.g. device.c2c_sigma=0.01, {rules}.learning_rate="
                             f"0.05, tuning.max_pulses=30 (repeatable; after the flags, so it "
                             f"wins); --help-settings lists them all")
    parser.add_argument("--help-settings", action="store_true",
                        help=f"list every --set key with its value (for --{required.partition('.')[2]} "
                             f"and the other flags, if given) and what it means, then exit")


def settings_from_args(args: argparse.Namespace, schema: Schema) -> list[tuple[str, Any]]:
    """The (key, value) settings of a command line: device default, flags, then --set."""
    given = vars(args)
    settings: list[tuple[str, Any]] = [("run.device", "cuda" if torch.cuda.is_available() else "cpu")]
    for key in schema.flags:
        value = given[key]
        if value is not None:
            settings.append((key, value if isinstance(value, bool)
                             else schema.parse_value(key, value)))
    return settings + [schema.parse_override(text) for text in args.set]


def settings_help(rows: Iterable[tuple[str, Any, str]], where: str) -> str:
    """--help-settings: one line per (key, value, help)."""
    rows = [(key, toml_value(value), text) for key, value, text in rows]
    width = min(max(len(k) + len(v) for k, v, _ in rows) + 3, 44)
    lines = [f"--set SECTION.KEY=VALUE settings ({where}):"]
    lines += [f"  {f'{k} = {v}':<{width}}  {text}" for k, v, text in rows]
    return "\n".join(lines)
