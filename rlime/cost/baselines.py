"""Baselines: the same DQN training workload on a GPU and on a DaDianNao-class ASIC.

Both price the workload the RRAM ledger recorded, so the three numbers describe identical
training (same steps, same minibatches, same network). Only ledger phases (by their role,
`rlime.hw.counts.ROLES`) and kinds are used; nothing here imports RL code.

Workload (per ledger phase p; "arithmetic phases" are those of role inference, forward,
backward and update -- DQN's act, forward, target, backward, update; phases of role program,
copy and storage -- DQN's program, target_sync, replay -- are copies, not arithmetic, on a GPU
or ASIC):

    ops_p   = 2 * mvm_macs_p + 2 * gradient_macs_p + optimizer_ops_p + digital_ops_p
              (training phases only; an MVM MAC and a gradient MAC are a multiply and an add;
              the backward pass's transposed MVMs are mvm_macs in phase backward)

GPU model (fp32, a per-phase roofline):

    bytes_p = 4 * mvm_macs_p / act_batch                        (role inference: every weight
                                                                 read per input, batch
                                                                 `act_batch`)
            + 4 * (mvm_macs_p + gradient_macs_p) / minibatch    (other arithmetic phases: fp32
                                                                 weights read, and weight
                                                                 gradients written, once per
                                                                 minibatch)
            + (buffer_bits_p + dram_bits_p + rram_memory_*_bits_p) / 8
                                                (activations, optimizer state, target copy and
                                                 replay accesses as the ledger counts them;
                                                 buffer_bits of storage phases are staging of
                                                 the same data and are left out; noc_bit_hops are
                                                 the RRAM chip's own network and are left out)
    t_p     = max(ops_p / (peak_fp32_flops * utilisation), bytes_p / memory_bandwidth)
    E_gpu   = board_power * sum_p t_p

`utilisation` is the fraction of peak FP32 throughput the training kernels achieve; it is an
explicit, reported knob. Default 0.3: an assumption, typical of dense fp32 training kernels at
moderate batch; DQN's small networks and minibatches (32) usually reach less, so 0.3 favours
the GPU (the RRAM/GPU ratio it gives is conservative). Memory runs at peak bandwidth (also in
the GPU's favour); the board draws its rated board power (TDP) throughout. Halving the
utilisation doubles the energy of compute-bound phases.

ASIC model (DaDianNao, Chen et al. MICRO 2014; 16-bit fixed point):

    E_asic = op_j * sum_p ops_p                    (all-inclusive energy per 16-bit op at peak:
                                                    node power / node peak throughput, which
                                                    includes streaming each MAC's weight from
                                                    the tiles' eDRAM)
           + edram_bit_j * buffer_bits             (activation / optimizer / target-copy traffic
                                                    through on-chip eDRAM, all phases)
           + noc_bit_hop_j * noc_bit_hops
           + dram_bit_j * (dram_bits + rram_memory_*_bits of storage phases)
                                                   (DaDianNao's 36 MB of eDRAM cannot hold a DQN
                                                    replay memory (1e5-1e6 transitions), so the
                                                    replay lives off chip; dram_bit_j is the
                                                    technology preset's, as for the RRAM chip)
           + edram_bit_j * (dram_bits + rram_memory_*_bits of the other phases)

`measure_gpu_energy(fn)` measures real energy with NVML where a CUDA device and pynvml exist.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, NamedTuple

import numpy as np

from rlime.common.errors import lookup
from rlime.cost.energy import PJ, TechnologyPreset, total
from rlime.hw.counts import ALL_KINDS, LedgerSnapshot

ARITHMETIC_ROLES: tuple[str, ...] = ("inference", "forward", "backward", "update")
DEFAULT_UTILISATION = 0.3


@dataclass(frozen=True)
class GpuPreset:
    name: str
    board_power_w: float
    peak_fp32_flops: float
    memory_bandwidth_bytes_s: float
    source: str


GPU_PRESETS: dict[str, GpuPreset] = {
    # GeForce GTX TITAN X (Maxwell GM200, 2015; the paper's era): 3072 CUDA cores x 2 FLOP x
    # 1.075 GHz boost = 6.6 TFLOPS FP32; 7 Gb/s GDDR5 on 384 bits = 336.5 GB/s; 250 W board
    # power (NVIDIA GeForce GTX TITAN X specifications)
    "titanx-maxwell": GpuPreset("titanx-maxwell", 250.0, 6.6e12, 336.5e9,
                                "NVIDIA GeForce GTX TITAN X (Maxwell) specifications, 2015"),
    # Tesla V100 SXM2: 15.7 TFLOPS FP32, 900 GB/s HBM2, 300 W (NVIDIA Tesla V100 datasheet)
    "v100": GpuPreset("v100", 300.0, 15.7e12, 900e9, "NVIDIA Tesla V100 (SXM2) datasheet"),
    # H100 SXM5: 67 TFLOPS FP32 (non-tensor), 3.35 TB/s HBM3, up to 700 W (NVIDIA H100 datasheet)
    "h100-sxm": GpuPreset("h100-sxm", 700.0, 67e12, 3.35e12, "NVIDIA H100 Tensor Core GPU "
                          "datasheet (SXM5)"),
}


@dataclass(frozen=True)
class AsicPreset:
    name: str
    op_j: float           # one 16-bit op (a MAC is two), all-inclusive at peak
    edram_bit_j: float    # one bit through on-chip eDRAM
    noc_bit_hop_j: float  # one bit over one on-chip network hop
    source: str


ASIC_PRESETS: dict[str, AsicPreset] = {
    "dadiannao": AsicPreset(
        "dadiannao",
        # DaDianNao node (Chen et al., MICRO 2014; 28 nm, 606 MHz): peak 5.58 TeraOps/s of
        # 16-bit fixed-point ops at 15.97 W -> 15.97 / 5.58e12 = 2.86 pJ per op
        op_j=15.97 / 5.58e12,
        # eDRAM traffic: 0.08 pJ/bit (ISAAC's CACTI eDRAM at 32 nm, 20.45 pJ per 256 bits; the
        # same buffer technology as the RRAM chip's, so buffer traffic costs both alike)
        edram_bit_j=0.08 * PJ,
        # on-chip network: 0.08 pJ/bit/hop (ISAAC router, as for the RRAM chip)
        noc_bit_hop_j=0.08 * PJ,
        source="Chen et al., DaDianNao, MICRO 2014 (node power / peak throughput); ISAAC eDRAM",
    ),
}


def gpu_preset(name: str) -> GpuPreset:
    return lookup(GPU_PRESETS, name, "GPU preset")


def asic_preset(name: str) -> AsicPreset:
    return lookup(ASIC_PRESETS, name, "ASIC preset")


def _col(table: np.ndarray, kind: str) -> np.ndarray:
    return table[:, ALL_KINDS.index(kind)]


def workload_ops(snapshot: LedgerSnapshot) -> np.ndarray:
    """Arithmetic ops (FLOPs on a GPU, 16-bit ops on the ASIC) per phase, (len(phases),)."""
    t = snapshot.table
    ops = (2 * _col(t, "mvm_macs") + 2 * _col(t, "gradient_macs") + _col(t, "optimizer_ops")
           + _col(t, "digital_ops"))
    phases = snapshot.phases
    mask = np.array([phases.role(p) in ARITHMETIC_ROLES for p in phases.names], dtype=np.float64)
    return ops * mask


def gpu_bytes(snapshot: LedgerSnapshot, minibatch: int, act_batch: int = 1) -> np.ndarray:
    """Bytes moved through GPU device memory per phase (module docstring), (len(phases),);
    `minibatch`: the training minibatch, `act_batch`: inputs per inference pass."""
    if minibatch < 1 or act_batch < 1:
        raise ValueError(f"minibatch = {minibatch} and act_batch = {act_batch} must be >= 1")
    t = snapshot.table
    macs, grads = _col(t, "mvm_macs"), _col(t, "gradient_macs")
    phases = snapshot.phases
    weights = np.zeros(len(phases))
    for p, phase in enumerate(phases.names):
        role = phases.role(phase)
        if role == "inference":
            weights[p] = 4 * macs[p] / act_batch
        elif role in ARITHMETIC_ROLES:
            weights[p] = 4 * (macs[p] + grads[p]) / minibatch
    buffer = _col(t, "buffer_bits").copy()
    buffer[_storage_rows(snapshot)] = 0.0
    memory = _memory_bits(t)
    traffic = (buffer + memory) / 8
    return weights + traffic


def _storage_rows(snapshot: LedgerSnapshot) -> list[int]:
    return [snapshot.phases.index(p) for p in snapshot.phases.with_role("storage")]


def _memory_bits(t: np.ndarray) -> np.ndarray:
    """Replay/memory bits per phase: off-chip DRAM plus RRAM memory-mode reads and writes."""
    return (_col(t, "dram_bits") + _col(t, "rram_memory_write_bits")
            + _col(t, "rram_memory_read_bits"))


def gpu_energy(snapshot: LedgerSnapshot, minibatch: int, gpu: str | GpuPreset = "titanx-maxwell",
               utilisation: float = DEFAULT_UTILISATION, act_batch: int = 1) -> dict[str, Any]:
    """Modelled GPU energy (joules) of the ledger's workload; see the module docstring."""
    g = gpu if isinstance(gpu, GpuPreset) else gpu_preset(gpu)
    if not (isinstance(utilisation, (int, float)) and 0 < utilisation <= 1):
        raise ValueError(f"utilisation = {utilisation!r} must be a fraction of peak FLOPS "
                         f"in (0, 1]")
    ops = workload_ops(snapshot)
    nbytes = gpu_bytes(snapshot, minibatch, act_batch)
    names = snapshot.phases.names
    t_compute = ops / (g.peak_fp32_flops * utilisation)
    t_memory = nbytes / g.memory_bandwidth_bytes_s
    t = np.maximum(t_compute, t_memory)
    seconds = float(t.sum())
    return {
        "energy_j": g.board_power_w * seconds,
        "seconds": seconds,
        "flops": float(ops.sum()),
        "bytes": float(nbytes.sum()),
        "compute_bound_phases": [p for i, p in enumerate(names)
                                 if t[i] > 0 and t_compute[i] >= t_memory[i]],
        "memory_bound_phases": [p for i, p in enumerate(names)
                                if t[i] > 0 and t_compute[i] < t_memory[i]],
        "utilisation": float(utilisation),
        "minibatch": int(minibatch),
        "act_batch": int(act_batch),
        "gpu": asdict(g),
    }


def asic_energy(snapshot: LedgerSnapshot, tech: TechnologyPreset,
                asic: str | AsicPreset = "dadiannao") -> dict[str, Any]:
    """Modelled DaDianNao-class ASIC energy (joules); see the module docstring."""
    a = asic if isinstance(asic, AsicPreset) else asic_preset(asic)
    t = snapshot.table
    memory = _memory_bits(t)
    off_chip_bits = float(memory[_storage_rows(snapshot)].sum())
    on_chip_memory_bits = float(memory.sum()) - off_chip_bits
    ops = float(workload_ops(snapshot).sum())
    parts = {
        "ops_j": a.op_j * ops,
        "edram_j": a.edram_bit_j * (float(_col(t, "buffer_bits").sum()) + on_chip_memory_bits),
        "noc_j": a.noc_bit_hop_j * float(_col(t, "noc_bit_hops").sum()),
        "dram_j": tech.dram_bit_j * off_chip_bits,
    }
    return {"energy_j": sum(parts.values()), "ops": ops, **parts, "asic": asdict(a)}


def _ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, None when undefined (no RRAM energy)."""
    return numerator / denominator if denominator > 0 else None


def compare(snapshot: LedgerSnapshot, tech: TechnologyPreset, minibatch: int,
            gpu: str = "titanx-maxwell", utilisation: float = DEFAULT_UTILISATION,
            asic: str = "dadiannao", act_batch: int = 1,
            episodes: int | None = None, steps: int | None = None) -> dict[str, Any]:
    """RRAM vs GPU vs ASIC energy of one workload, with every parameter used.

    Ratios are baseline / RRAM (how many times more energy-efficient the RRAM chip is);
    None when the ledger holds no RRAM energy. With `episodes` / `steps` (how much training
    the snapshot covers) the three energies are also given per episode / per step.
    """
    rram_j = total(snapshot, tech)
    g = gpu_energy(snapshot, minibatch, gpu, utilisation, act_batch)
    s = asic_energy(snapshot, tech, asic)
    out = {
        "rram_j": rram_j,
        "gpu_j": g["energy_j"],
        "asic_j": s["energy_j"],
        "gpu_over_rram": _ratio(g["energy_j"], rram_j),
        "asic_over_rram": _ratio(s["energy_j"], rram_j),
        "energy_preset": tech.name,
        "utilisation": float(utilisation),
        "minibatch": int(minibatch),
        "gpu_model": g,
        "asic_model": s,
    }
    for key, count in (("per_episode", episodes), ("per_step", steps)):
        if count is not None:
            n = max(int(count), 1)
            out[key] = {"count": int(count), "rram_j": rram_j / n, "gpu_j": g["energy_j"] / n,
                        "asic_j": s["energy_j"] / n}
    return out


# ---- measured GPU energy (optional) ---------------------------------------------------------


class GpuMeasurement(NamedTuple):
    energy_j: float | None   # None when it could not be measured
    seconds: float | None
    reason: str | None       # why not, when energy_j is None
    result: Any = None       # fn's return value (fn is not called when measuring is impossible)


def measure_gpu_energy(fn: Callable[[], Any], device_index: int = 0) -> GpuMeasurement:
    """Run fn() and measure the GPU's energy with NVML's total-energy counter (Volta or newer).

    pynvml (package nvidia-ml-py) is imported lazily; without it, or without a CUDA device,
    fn is not run and energy_j is None with the reason.
    """
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return GpuMeasurement(None, None, "pynvml is not installed (pip install nvidia-ml-py)")
    import torch

    if not torch.cuda.is_available():
        return GpuMeasurement(None, None, "no CUDA device is visible to torch")
    try:
        pynvml.nvmlInit()
    except Exception as err:  # pynvml.NVMLError and driver-library errors
        return GpuMeasurement(None, None, f"NVML could not start: {err}")
    try:
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            torch.cuda.synchronize()
            start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception as err:
            return GpuMeasurement(None, None, f"NVML energy counter unavailable: {err}")
        start = time.perf_counter()
        result = fn()  # its exceptions propagate
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        end_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return GpuMeasurement((end_mj - start_mj) * 1e-3, seconds, None, result)


__all__ = ["GPU_PRESETS", "ASIC_PRESETS", "GpuPreset", "AsicPreset", "GpuMeasurement",
           "gpu_preset", "asic_preset", "workload_ops", "gpu_bytes", "gpu_energy",
           "asic_energy", "compare", "measure_gpu_energy", "DEFAULT_UTILISATION",
           "ARITHMETIC_ROLES"]
