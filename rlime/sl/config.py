"""The resolved configuration of one supervised training run (`SLConfig`), through the settings
pipeline the DQN harness uses (`rlime.harness.pipeline`).

Sections `run` (`SLConfig`), `train` (`TrainConfig`) and the hardware's `device`, `tile`,
`forward`, `backward`, `tuning`. `resolve` layers, later winning: the dataset's defaults from
`experiments/sl_defaults.toml` (and the network's within the dataset's), then the given (key, value) pairs (flags and `--set`s, or a
suite's matrix, budget and settings). `run.update_mode` = "time" is TIME's rule (plain SGD
tuned into the arrays, no residual), "mixed-precision" a digital residual per weight, "auto"
the defaults and the preset as they are. config.toml holds `[run]`, `[train]`, `[hardware]`
and `[protocol]` (the dataset: source, split, sizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from experiments import SL_DEFAULTS, bundled

from rlime.common.errors import require
from rlime.common.files import tomllib
from rlime.common.settings import build
from rlime.harness.pipeline import Schema, check_run, config_from_toml, config_toml, mode_in_effect
from rlime.hw.config import SECTIONS as HARDWARE_SECTIONS, HardwareConfig
from rlime.hw.optim import check_learning
from rlime.sl.data import DATASETS
from rlime.sl.nets import NETWORKS


@dataclass(frozen=True)
class TrainConfig:
    """The classifier and how it learns: the `[train]` table of a run's configuration."""

    network: str = "mlp"            # mlp, or lenet (LeNet-5)
    hidden: tuple[int, ...] = (64,)  # hidden-layer widths of the MLP
    update_rule: str = "sgd"        # sgd, momentum or adam
    learning_rate: float = 0.1      # step size of the update rule
    momentum: float = 0.9           # only for update_rule "momentum"
    batch_size: int = 32            # training images per minibatch update
    eval_batch_size: int = 512      # test images per evaluation pass (speed only)
    sources: tuple[str, ...] = field(default=())  # where the values come from (documentation)

    def __post_init__(self) -> None:
        check_learning(self, "train", NETWORKS)
        for name in ("batch_size", "eval_batch_size"):
            require(getattr(self, name) >= 1, f"train.{name}", getattr(self, name),
                    "it must be an integer >= 1")

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return build(cls, "train", data)


@dataclass(frozen=True)
class SLConfig:
    """One supervised training run; an epoch is one pass over the training images."""

    dataset: str                    # digits (bundled with scikit-learn) or mnist (local files)
    data: str = ""                  # mnist: a directory of its IDX files or mnist.npz, or an .npz
    backend: str = "rram"           # rram, or float (plain PyTorch)
    preset: str = "default"         # hardware preset, with its energy prices
    energy_preset: str = "default"  # the preset whose energy prices are charged
    epochs: int = 20                # passes over the training images
    seed: int = 1                   # random seed (initial weights, minibatch order, the chip)
    device: str = "cpu"             # torch device
    threads: int = 0                # torch CPU threads (0: OMP_NUM_THREADS, else physical cores)
    checkpoint_every: int = 1       # epochs between checkpoints
    update_mode: str = "auto"       # time (plain SGD, no residual), mixed-precision, or auto
    train: TrainConfig = field(default_factory=TrainConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    def __post_init__(self) -> None:
        check_run(self, "train", positive=("epochs", "checkpoint_every"))
        require(self.dataset in DATASETS, "run.dataset", self.dataset,
                f"one of {', '.join(DATASETS)}")

    @property
    def mode_in_effect(self) -> str:
        """How updates reach the cells (`rlime.harness.pipeline.mode_in_effect`)."""
        return mode_in_effect(self.train.update_rule, self.hardware.tuning.residual)

    def to_toml(self, protocol: dict[str, Any]) -> str:
        return config_toml(self, "train", protocol)

    @classmethod
    def from_toml(cls, text: str) -> "SLConfig":
        return config_from_toml(cls, "train", TrainConfig, text)


SECTIONS = {"run": SLConfig, "train": TrainConfig, **HARDWARE_SECTIONS}
FOLLOWS = {"run.energy_preset": "run.preset"}
# the settings `python -m rlime.sl` has a flag for
FLAGS = ("run.dataset", "run.data", "train.network", "run.backend", "run.preset",
         "run.energy_preset", "tuning.scheme", "run.epochs", "run.seed", "run.device",
         "run.threads", "run.checkpoint_every", "run.update_mode", "train.update_rule",
         "train.learning_rate", "train.batch_size")
SCHEMA = Schema(SECTIONS, "train", FLAGS, FOLLOWS, aliases={"train.learning_rate": ("--lr",)})


def dataset_defaults(dataset: str, network: str | None = None) -> tuple[dict, dict]:
    """(run defaults, train defaults) of a dataset from experiments/sl_defaults.toml: its
    `[<dataset>.run]` and `[<dataset>.train]`, and over them `[<dataset>.<network>.train]` for
    `network` (default: the dataset's)."""
    entry = _defaults().get(dataset, {})
    train = dict(entry.get("train", {}))
    train.update(entry.get(network or train.get("network", TrainConfig.network), {}).get("train", {}))
    return dict(entry.get("run", {})), train


def default_keys() -> set[str]:
    """The settings some dataset's defaults give (their value depends on --dataset)."""
    tables = [t for entry in _defaults().values()
              for t in (entry, *(entry[n] for n in NETWORKS if n in entry))]
    return {f"{section}.{key}" for t in tables for section in ("run", "train")
            for key in t.get(section, {})}


def _defaults() -> dict[str, Any]:
    return tomllib.loads(bundled(SL_DEFAULTS).read_text())


def resolve(settings: Iterable[tuple[str, Any]]) -> SLConfig:
    """The SLConfig of (key, value) settings over the dataset's defaults (`run.dataset` is
    required)."""
    settings = list(settings)
    dataset = dict(settings).get("run.dataset")
    require(dataset in DATASETS, "run.dataset", dataset, f"one of {', '.join(DATASETS)}")
    return SCHEMA.resolve(settings, *dataset_defaults(dataset, dict(settings).get("train.network")))


def describe(cfg: SLConfig) -> Iterator[tuple[str, Any, str]]:
    """(key, value in cfg, help with the type allowed) of every setting."""
    return SCHEMA.describe(cfg, skip=("run.dataset",))
