"""One supervised training run (`SLTrainer`): a classifier trained in memory, epoch by epoch,
and what learning cost the chip.

A step reads a minibatch from memory (phase `data`: 8 bits a pixel and a label through the
off-chip DRAM interface and the on-chip buffer), runs the network forward (`forward`: crossbar
MVMs, ReLUs, pooling and the cross-entropy loss in digital periphery), backpropagates through
the transposed arrays (`backward`) and updates and tunes the arrays (`update`, by
`TunedOptimizer`) -- the same layers, backend, optimizer, tuner and ledger a DQN agent trains
with. The training images are shuffled per epoch by a permutation drawn from (seed, epoch),
so a resumed run needs no shuffling state. After each epoch the test set is evaluated (phase
`evaluate`, its cost kept apart, `Attribution.book_eval`) and the epoch is logged: one line of
epochs.jsonl, TensorBoard scalars on the epoch axis.

The run directory (`rlime.harness.run_dir`): config.toml, epochs.jsonl, summary.json
(`rlime.sl.summary`), TensorBoard events, checkpoint.pt (after setup, every
`run.checkpoint_every` epochs, at the end, and on SIGINT/SIGTERM after the current step) with
everything needed to continue exactly: cells, ledger and its attribution, optimizer, the chip's
random stream, the step and the current epoch's running sums.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from rlime.cost.energy import energy_preset, price
from rlime.harness.attribution import Attribution
from rlime.harness.run_dir import RunDirectory
from rlime.harness.session import (Interrupted, RecentRate, StopSignals, choose_threads,
                                   nbytes, restore_state, progress_bar, size_text)
from rlime.hw.backend import make_backend
from rlime.hw.optim import sram_bits_per_cell, update_rule
from rlime.sl.config import SLConfig
from rlime.sl.data import Dataset, load_dataset
from rlime.sl.nets import build_network, layer_counts
from rlime.sl.phases import SL_PHASES
from rlime.sl.summary import SLFacts, summarise

CHECKPOINT_VERSION = 1
EPOCHS_FILE = "epochs.jsonl"
REFRESH_S = 1.0     # seconds between progress-bar refreshes
RATE_WINDOW_S = 30.0
DATA_BITS = 8       # bits a pixel (8-bit codes) and a label (10 classes) read from memory
# fp32 ops per logit of the loss in digital periphery: softmax (max, subtract, exp, sum,
# divide), log, the picked log-probability, and the gradient softmax - one-hot
LOSS_OPS = 8


class NumericalFailure(RuntimeError):
    """The loss became NaN or infinite."""


class SLTrainer:
    """One supervised training run in one run directory."""

    def __init__(self, cfg: SLConfig, run_dir: RunDirectory, *, progress: bool = True) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.progress = progress
        self.device = torch.device(cfg.device)
        self.threads, self.threads_reason = choose_threads(cfg.threads)
        torch.set_num_threads(self.threads)
        self.data: Dataset = load_dataset(cfg.dataset, cfg.data).to(self.device)
        t = cfg.train
        self.backend = make_backend(cfg.backend, cfg.hardware, self.device, cfg.seed, SL_PHASES)
        torch.manual_seed(cfg.seed)  # the float initialisation of the network
        network = build_network(t.network, self.data.input_shape, self.data.classes, t.hidden)
        self.layers, self.pools = layer_counts(network)
        self.net = self.backend.place(network)
        self.optimizer = self.backend.optimizer(
            update_rule(t.update_rule, self.net.parameters(), t.learning_rate, t.momentum),
            self.net)
        self.tech = energy_preset(cfg.energy_preset, cfg.hardware.device, cfg.hardware.tile,
                                  sram_bits_per_cell(t.update_rule, cfg.hardware.tuning.residual))
        self.steps_per_epoch = math.ceil(len(self.data.train_y) / t.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        # progress (all of it checkpointed): minibatch updates, this epoch's running sums
        self.step = 0
        self.sums = {"loss": 0.0, "correct": 0, "seen": 0}
        self.attribution = Attribution(self.backend.snapshot, 1)   # setup: programming
        self.records: list[dict[str, Any]] = []                    # epochs.jsonl
        self.wall_before = 0.0
        self._clock = (time.monotonic(), 0)
        self.rate = RecentRate(RATE_WINDOW_S)
        self._order: tuple[int, torch.Tensor] | None = None
        self._stop = StopSignals()
        self._saved_step: int | None = None
        self._bar: tqdm | None = None

    # -- the loop -----------------------------------------------------------------------------

    def run(self, session_steps: int | None = None) -> dict[str, Any]:
        """Train to `epochs`, or pause (checkpointed) after `session_steps` more steps."""
        stop = self.total_steps if session_steps is None else min(self.total_steps,
                                                                  self.step + session_steps)
        # events after the checkpoint's epoch are lost work (those at its epoch it saw)
        writer = SummaryWriter(str(self.run_dir.path),
                               purge_step=len(self.records) + 1 if self.records else None)
        self._bar = progress_bar(self.total_steps, self.step, "step",
                                 f"{self.cfg.dataset} {self.cfg.train.network} {self.cfg.backend}",
                                 self.progress)
        self._clock = (time.monotonic(), self.step)
        self.rate.add(self.step)
        try:
            with self._stop:
                if self.step == 0:  # a run killed before its first epoch can resume
                    self._checkpoint()
                shown = -REFRESH_S
                while self.step < stop and self._stop.signal is None:
                    self._train_step()
                    if self.step % self.steps_per_epoch == 0:
                        self._end_epoch(writer)
                    if time.monotonic() - shown >= REFRESH_S:
                        self._show()
                        shown = time.monotonic()
                self._show()
        finally:
            self._bar.close()
            writer.close()
        if self._saved_step != self.step:
            self._checkpoint()
        if self._stop.signal is not None:
            raise Interrupted()
        return self.summary()

    @property
    def epoch(self) -> int:
        """Epochs finished."""
        return self.step // self.steps_per_epoch

    def position(self) -> str:
        """Where the run is: "epoch 3 of 20 (step 135)"."""
        return f"epoch {self.epoch} of {self.cfg.epochs} (step {self.step:,})"

    def finished(self) -> bool:
        return self.step >= self.total_steps

    @property
    def wall(self) -> float:
        """Seconds of training over all sessions of this run."""
        return self.wall_before + time.monotonic() - self._clock[0]

    def _permutation(self, epoch: int) -> torch.Tensor:
        """The order of the training images in `epoch`: a permutation drawn from (seed, epoch)."""
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.cfg.seed, epoch])
            order = torch.from_numpy(rng.permutation(len(self.data.train_y)))
            self._order = (epoch, order.to(self.device))
        return self._order[1]

    def _read(self, *tensors: torch.Tensor) -> None:
        """Charge reading a minibatch (images and labels) from memory: off-chip DRAM, then the
        on-chip buffer."""
        bits = DATA_BITS * sum(t.numel() for t in tensors)
        self.backend.charge("dram_bits", bits, "data")
        self.backend.charge("buffer_bits", bits, "data")

    def _logits(self, x: torch.Tensor, y: torch.Tensor, phase: str,
                reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, cross-entropy loss) of a minibatch read from memory, in `phase`."""
        self._read(x, y)
        with self.backend.phase(phase):
            logits = self.net(x)
            loss = F.cross_entropy(logits, y, reduction=reduction)
        self.backend.charge("digital_ops", LOSS_OPS * logits.numel(), phase)
        return logits, loss

    def _train_step(self) -> None:
        epoch, i = divmod(self.step, self.steps_per_epoch)
        batch = self.cfg.train.batch_size
        idx = self._permutation(epoch)[i * batch:(i + 1) * batch]
        y = self.data.train_y[idx]
        logits, loss = self._logits(self.data.train_x[idx], y, "forward")
        if not torch.isfinite(loss):
            raise NumericalFailure(f"the training loss became {loss.item()}; the network "
                                   f"diverged -- lower the learning rate")
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()  # on the chip: the update rule, then tuning (phase update)
        self.sums["loss"] += float(loss.detach()) * len(y)
        self.sums["correct"] += int((logits.argmax(1) == y).sum())
        self.sums["seen"] += len(y)
        self.step += 1
        self.rate.add(self.step)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """(mean loss, accuracy) on the test set, charged to phase `evaluate`."""
        loss, correct, n = 0.0, 0, len(self.data.test_y)
        for start in range(0, n, self.cfg.train.eval_batch_size):
            part = slice(start, start + self.cfg.train.eval_batch_size)
            y = self.data.test_y[part]
            logits, total = self._logits(self.data.test_x[part], y, "evaluate", "sum")
            loss += float(total)
            correct += int((logits.argmax(1) == y).sum())
        return loss / n, correct / n

    def _end_epoch(self, writer: SummaryWriter) -> None:
        self.attribution.attribute()
        training = self.attribution.finish_episode(0)     # this epoch's steps (env 0: the run)
        test_loss, test_accuracy = self.evaluate()
        evaluation = self.attribution.book_eval()
        sums, self.sums = self.sums, {"loss": 0.0, "correct": 0, "seen": 0}
        energy = price(training, self.tech)
        dead = self.backend.dead_cell_fraction([self.net])
        record = {"epoch": self.epoch, "step": self.step, "samples": sums["seen"],
                  "train_loss": sums["loss"] / sums["seen"],
                  "train_accuracy": sums["correct"] / sums["seen"],
                  "test_loss": test_loss, "test_accuracy": test_accuracy,
                  "writes": training.writes, "energy_j": sum(energy.values()), "energy": energy,
                  "eval_energy_j": sum(price(evaluation, self.tech).values()),
                  "dead_cell_fraction": dead, "wall_s": self.wall,
                  "ledger": training.as_dict(), "eval_ledger": evaluation.as_dict()}
        self.records.append(record)
        self.run_dir.append(EPOCHS_FILE, [record])
        e = self.epoch
        for tag, key in (("charts/test_accuracy", "test_accuracy"),
                         ("charts/train_accuracy", "train_accuracy"),
                         ("losses/train_loss", "train_loss"), ("losses/test_loss", "test_loss"),
                         ("device/epoch_writes", "writes"), ("device/epoch_energy_j", "energy_j"),
                         ("device/dead_cell_fraction", "dead_cell_fraction")):
            writer.add_scalar(tag, record[key], e)
        writer.add_scalar("charts/steps_per_s", self.rate.rate(), e)
        for category, joules in energy.items():
            writer.add_scalar(f"energy/{category}", joules, e)
        if e % self.cfg.checkpoint_every == 0 or self.step >= self.total_steps:
            writer.flush()
            self._checkpoint()

    def _show(self) -> None:
        """Progress bar: epoch, steps per second, last test accuracy, writes and energy so far."""
        if not self.progress:
            return
        total = self.backend.snapshot()
        energy = sum(price(total, self.tech).values())
        acc = f"{100 * self.records[-1]['test_accuracy']:.1f} %" if self.records else "-"
        self._bar.n = self.step
        self._bar.set_postfix_str(f"epoch {self.epoch}/{self.cfg.epochs} | "
                                  f"{self.rate.rate():.0f} steps/s | test acc {acc} | "
                                  f"writes {total.writes:.3g} | {energy:.3g} J")

    def summary(self) -> dict[str, Any]:
        """summary.json as of now."""
        return summarise(SLFacts(
            cfg=self.cfg, protocol=self.protocol(), epochs=self.records, steps=self.step,
            ledger=self.attribution.split(), tech=self.tech, on_chip=self.backend.on_chip,
            cell_pulse_counts=self.backend.cell_pulse_counts([self.net]),
            dead_cell_fraction=self.backend.dead_cell_fraction([self.net]),
            layers=self.layers, pools=self.pools, wall_s=self.wall,
            steps_per_s=(self.step - self._clock[1]) / max(time.monotonic() - self._clock[0], 1e-9),
            run_dir=str(self.run_dir.path)))

    def protocol(self) -> dict[str, Any]:
        """What the results depend on beyond the settings: the dataset and the network."""
        return {**self.data.protocol(), "network": self.cfg.train.network,
                "weight_layers": self.layers, "pooling_layers": self.pools,
                "parameters": sum(p.numel() for p in self.net.parameters()),
                "steps_per_epoch": self.steps_per_epoch}

    # -- checkpoints --------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        """Write checkpoint.pt and summary.json, saying on stderr first what is saved."""
        self.attribution.attribute()
        state = {"version": CHECKPOINT_VERSION, "config": self.cfg.to_toml(self.protocol()),
                 "step": self.step, "sums": dict(self.sums), "records": len(self.records),
                 "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "backend": self.backend.state_dict(), "attribution": self.attribution.state_dict(),
                 "wall": self.wall}
        tqdm.write(f"checkpoint at {self.position()} -> {self.run_dir.checkpoint_file}: about "
                   f"{size_text(nbytes(state))}", file=sys.stderr)
        self.run_dir.save_checkpoint(state)
        self.run_dir.write_json("summary.json", self.summary())
        self._saved_step = self.step

    def restore(self) -> None:
        state = restore_state(  # the budget and threads may change on resume
            self.run_dir, self.device, CHECKPOINT_VERSION, "supervised-learning checkpoint",
            lambda text: dataclasses.replace(SLConfig.from_toml(text), epochs=self.cfg.epochs,
                                             threads=self.cfg.threads), self.cfg,
            {"net": self.net, "optimizer": self.optimizer, "backend": self.backend,
             "attribution": self.attribution})
        self.step, self.sums, self.wall_before = state["step"], dict(state["sums"]), state["wall"]
        self.run_dir.truncate_jsonl(EPOCHS_FILE, state["records"])
        self.records = self.run_dir.read_jsonl(EPOCHS_FILE)

