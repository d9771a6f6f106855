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
            + (buffer_bits_p + sram_bits_p + dram_bits_p + rram_memory_*_bits_p) / 8
                                                (activations, optimizer state, target copy and
                                                 replay accesses as the ledger counts them;
                                                 sram_bits also holds the RRAM chip's residual
                                                 accumulators, which float training does not
                                                 have: an upper bound on the GPU's traffic;
                                                 buffer_bits of storage phases are staging of
                                                 the same data and are left out; noc_bit_hops are
                                                 the RRAM chip's own network and are left out)
    t_active_p = max(ops_p / (peak_fp32_flops * utilisation), bytes_p / memory_bandwidth)
    t_launch_p = launches_p * launch_latency_s        (kernel-launch floor; launches_p below)
    t_p        = max(t_active_p, t_launch_p)
    u_p        = utilisation * t_compute_p / t_active_p   (FLOP utilisation the phase achieves)
    E_gpu      = sum_p [ idle_w * t_p + u_p * (board_power_w - idle_w) * t_active_p ]

Board power: a linear power-vs-utilisation model, P(u) = idle + u x (TDP - idle), at the FLOP
utilisation each phase achieves: the board draws its idle power `idle_w` over the whole time
(launch gaps included) and u_p x (TDP - idle) more while kernels run (at u = 1 and compute
bound it draws the rated board power, TDP). Memory-bound phases achieve less than
`utilisation` and so draw less (in the GPU's favour: DRAM traffic is charged idle power only). The idle powers are those of a board at rest (lowest P-state), so they favour
the GPU: with a CUDA context the board sits in a higher DVFS state (+26-50 W on HBM boards,
arXiv:2605.23918).

Kernel-launch floor. The ledger counts operations, not calls, so the launches come from a
documented per-call count (`dqn_launches`, PyTorch eager on CUDA, default foreach optimisers;
L = weight layers of the Q network):

    act          (2L - 1) + 3 per act call     (L GEMMs with the bias fused, L - 1 ReLUs; H2D
                                                copy of the observation, argmax, D2H copy)
    forward      (2L - 1) + 4 per update       (+ gather, squeeze, smooth-L1 loss in two)
    target       ((2L - 1) + 4) per target pass (+ max, TD-target arithmetic); double DQN: 2
    backward     4L + 1 per update             (grad-input GEMM for L - 1 layers, grad-weight
                                                GEMM and bias-grad reduction for L, L - 1 ReLU
                                                backwards, 3 for loss / gather)
    update       10 per update                 (clip_grad_norm_: ~5 foreach kernels; Adam
                                                foreach: ~5)
    replay       5 per update                  (H2D copies of the sampled minibatch's tensors)
    target_sync  2L per sync                   (one copy per parameter tensor)
    program      0                             (setup, not training)

Calls per phase: `updates` (minibatch updates) and `syncs` are given by the caller (from the run
configuration); target passes per update and act calls are read off the ledger's MVM MACs:
target passes = updates x macs_target / macs_forward, act calls = updates x minibatch x
macs_act / (macs_forward x act_batch) (an act call runs the network on all act_batch inputs;
all-explore steps run none, on the GPU as on the chip). With no updates recorded, act calls =
steps / act_batch (an upper bound). `launch_latency_s` defaults to 5 us, the low end of the
CUDA launch overhead (5-50 us per launch after context setup; NVIDIA's Nsight Systems guide
measures ~20 us per PyTorch element-wise op round trip on a V100, as quoted by
groundy.com/articles/every-cuda-kernel-pays-a-launch-tax...), again in the GPU's favour.
Without launch counts (`launches=None`) there is no launch floor (a pure roofline).

`utilisation` is the fraction of peak FP32 throughput the training kernels achieve; it is an
explicit, reported knob, and `gpu_band` sweeps it (0.05, 0.3, 1.0) over the presets. The
central value is Titan X (Maxwell, the paper's era), utilisation 0.3, launch latency 5 us.
Memory runs at peak bandwidth (in the GPU's favour).

ASIC model (DaDianNao, Chen et al. MICRO 2014; 16-bit fixed point):

    E_asic = op_j * sum_p ops_p                    (all-inclusive energy per 16-bit op at peak:
                                                    node power / node peak throughput, which
                                                    includes streaming each MAC's weight from
                                                    the tiles' eDRAM)
           + edram_bit_j * (buffer_bits + sram_bits) (activation / optimizer / target-copy
                                                    traffic through on-chip eDRAM, all phases)
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
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from rlime.common.errors import lookup
from rlime.cost.energy import PJ, TechnologyPreset, total
from rlime.hw.counts import ALL_KINDS, LedgerSnapshot

ARITHMETIC_ROLES: tuple[str, ...] = ("inference", "forward", "backward", "update")
DEFAULT_UTILISATION = 0.3
# Low end of the CUDA kernel-launch overhead, 5-50 us per launch after context setup; NVIDIA's
# Nsight Systems guide measures ~20 us for a PyTorch element-wise op round trip on a V100
# (quoted in groundy.com, "Every CUDA kernel pays a launch tax"). 5 us favours the GPU.
DEFAULT_LAUNCH_LATENCY_S = 5e-6
BAND_UTILISATIONS: tuple[float, ...] = (0.05, 0.3, 1.0)
CENTRAL_GPU = "titanx-maxwell"


@dataclass(frozen=True)
class GpuPreset:
    name: str
    board_power_w: float
    peak_fp32_flops: float
    memory_bandwidth_bytes_s: float
    source: str
    idle_w: float = 0.0   # board power at rest (W)
    idle_source: str = ""


GPU_PRESETS: dict[str, GpuPreset] = {
    # GeForce GTX TITAN X (Maxwell GM200, 2015; the paper's era): 3072 CUDA cores x 2 FLOP x
    # 1.075 GHz boost = 6.6 TFLOPS FP32; 7 Gb/s GDDR5 on 384 bits = 336.5 GB/s; 250 W board
    # power (NVIDIA GeForce GTX TITAN X specifications)
    # idle: 8 W measured on the card alone, idle desktop (Tom's Hardware, GeForce GTX Titan X
    # review, 2015: "Results: Power Consumption")
    "titanx-maxwell": GpuPreset("titanx-maxwell", 250.0, 6.6e12, 336.5e9,
                                "NVIDIA GeForce GTX TITAN X (Maxwell) specifications, 2015",
                                8.0, "Tom's Hardware GTX Titan X review (card-only idle, 8 W)"),
    # Tesla V100 SXM2: 15.7 TFLOPS FP32, 900 GB/s HBM2, 300 W (NVIDIA Tesla V100 datasheet)
    # idle: 40 W -- an assumption (no measurement cited here); HBM data-centre boards idle at
    # tens of watts, e.g. H200 80 W (below)
    "v100": GpuPreset("v100", 300.0, 15.7e12, 900e9, "NVIDIA Tesla V100 (SXM2) datasheet",
                      40.0, "assumption (uncited): typical HBM data-centre board at rest"),
    # H100 SXM5: 67 TFLOPS FP32 (non-tensor), 3.35 TB/s HBM3, up to 700 W (NVIDIA H100 datasheet)
    # idle: 70 W -- H200 SXM (same board family) measured 80.3 W idle against 592.8 W under
    # load (api.serialalice.pt GPU energy benchmark, 2026); 70 W is rounded down
    "h100-sxm": GpuPreset("h100-sxm", 700.0, 67e12, 3.35e12, "NVIDIA H100 Tensor Core GPU "
                          "datasheet (SXM5)", 70.0,
                          "H200 SXM measured idle 80.3 W (serialalice GPU energy benchmark), "
                          "rounded down"),
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
    buffer += _col(t, "sram_bits")
    memory = _memory_bits(t)
    traffic = (buffer + memory) / 8
    return weights + traffic


def _storage_rows(snapshot: LedgerSnapshot) -> list[int]:
    return [snapshot.phases.index(p) for p in snapshot.phases.with_role("storage")]


def _memory_bits(t: np.ndarray) -> np.ndarray:
    """Replay/memory bits per phase: off-chip DRAM plus RRAM memory-mode reads and writes."""
    return (_col(t, "dram_bits") + _col(t, "rram_memory_write_bits")
            + _col(t, "rram_memory_read_bits"))


# kernel launches per call of each DQN phase, as functions of the weight layers L (docstring)
def _launches_per_call(layers: int) -> dict[str, int]:
    fwd = 2 * layers - 1
    return {"act": fwd + 3, "forward": fwd + 4, "target": fwd + 4, "backward": 4 * layers + 1,
            "update": 10, "replay": 5, "target_sync": 2 * layers, "program": 0}


def dqn_launches(snapshot: LedgerSnapshot, updates: int, layers: int, minibatch: int,
                 act_batch: int = 1, syncs: int = 0, steps: int | None = None
                 ) -> dict[str, float]:
    """Kernel launches per phase of a DQN ledger on a GPU (PyTorch eager; module docstring).

    `updates`: minibatch updates the ledger covers; `layers`: weight layers of the Q network;
    `syncs`: target syncs; `steps`: env steps (only used when no update was recorded)."""
    if updates < 0 or layers < 1 or minibatch < 1 or act_batch < 1 or syncs < 0:
        raise ValueError(f"updates = {updates}, layers = {layers}, minibatch = {minibatch}, "
                         f"act_batch = {act_batch}, syncs = {syncs}: counts must be >= 0 "
                         f"(layers, minibatch, act_batch >= 1)")
    macs = _col(snapshot.table, "mvm_macs")
    phases = snapshot.phases

    def m(name: str) -> float:
        return float(macs[phases.index(name)]) if name in phases.names else 0.0

    fwd = m("forward")
    if updates > 0 and fwd > 0:
        target_passes = updates * m("target") / fwd
        act_calls = updates * minibatch * m("act") / (fwd * act_batch)
    else:
        target_passes = 0.0
        act_calls = (steps or 0) / act_batch if m("act") > 0 else 0.0
    calls = {"act": act_calls, "forward": updates, "target": target_passes,
             "backward": updates, "update": updates, "replay": updates, "target_sync": syncs,
             "program": 0}
    per = _launches_per_call(layers)
    return {p: float(calls.get(p, 0) * per.get(p, 0)) for p in phases.names}


# kernel launches per minibatch update of a classifier trained by backpropagation, PyTorch eager
# on CUDA with the default foreach optimisers, the dataset resident in device memory; L weight
# layers (linear and convolution), P pooling layers:
#   forward   (2L - 1) + P + 4   L GEMMs / convolutions with the bias fused, L - 1 ReLUs, P poolings,
#                                two index_select gathers of the minibatch (inputs, labels), the
#                                cross-entropy loss in two (log_softmax, nll_loss)
#   backward  4L + P + 1         as DQN's backward (above), and one per pooling
#   update    1 / 2 / 5          SGD: one _foreach_add_; momentum: 2; Adam: ~5 (as DQN's)
#   every other phase 0          (programming is setup; evaluation is not training)
_RULE_LAUNCHES = {"sgd": 1, "momentum": 2, "adam": 5}


def classifier_launches(snapshot: LedgerSnapshot, updates: int, layers: int, pools: int = 0,
                        rule: str = "sgd") -> dict[str, float]:
    """Kernel launches per phase of a classifier's training ledger on a GPU (see above):
    `updates` minibatch updates of a network of `layers` weight layers and `pools` poolings,
    update rule `rule` ("sgd", "momentum" or "adam")."""
    if updates < 0 or layers < 1 or pools < 0 or rule not in _RULE_LAUNCHES:
        raise ValueError(f"updates = {updates}, layers = {layers}, pools = {pools}, rule = "
                         f"{rule!r}: counts must be >= 0 (layers >= 1), rule one of "
                         f"{', '.join(_RULE_LAUNCHES)}")
    per = {"forward": 2 * layers - 1 + pools + 4, "backward": 4 * layers + pools + 1,
           "update": _RULE_LAUNCHES[rule]}
    return {p: float(updates * per.get(p, 0)) for p in snapshot.phases.names}


def _launch_array(snapshot: LedgerSnapshot, launches: Mapping[str, float] | None) -> np.ndarray:
    names = snapshot.phases.names
    if launches is None:
        return np.zeros(len(names))
    unknown = set(launches) - set(names)
    if unknown:
        raise ValueError(f"launches name unknown phases {sorted(unknown)}; phases are {names}")
    return np.array([float(launches.get(p, 0.0)) for p in names])


def gpu_energy(snapshot: LedgerSnapshot, minibatch: int, gpu: str | GpuPreset = "titanx-maxwell",
               utilisation: float = DEFAULT_UTILISATION, act_batch: int = 1,
               launches: Mapping[str, float] | None = None,
               launch_latency_s: float = DEFAULT_LAUNCH_LATENCY_S) -> dict[str, Any]:
    """Modelled GPU energy (joules) of the ledger's workload; see the module docstring.

    `launches`: kernel launches per phase (`dqn_launches`); None: no launch floor."""
    g = gpu if isinstance(gpu, GpuPreset) else gpu_preset(gpu)
    if not (isinstance(utilisation, (int, float)) and 0 < utilisation <= 1):
        raise ValueError(f"utilisation = {utilisation!r} must be a fraction of peak FLOPS "
                         f"in (0, 1]")
    if not launch_latency_s >= 0:
        raise ValueError(f"launch_latency_s = {launch_latency_s!r} must be >= 0")
    ops = workload_ops(snapshot)
    nbytes = gpu_bytes(snapshot, minibatch, act_batch)
    n_launch = _launch_array(snapshot, launches)
    names = snapshot.phases.names
    t_compute = ops / (g.peak_fp32_flops * utilisation)
    t_memory = nbytes / g.memory_bandwidth_bytes_s
    t_active = np.maximum(t_compute, t_memory)
    t_launch = n_launch * launch_latency_s
    t = np.maximum(t_active, t_launch)
    active_w = g.idle_w + utilisation * (g.board_power_w - g.idle_w)  # compute-bound power
    # dynamic energy: u_p (TDP - idle) t_active_p = utilisation (TDP - idle) t_compute_p
    dynamic_j = utilisation * (g.board_power_w - g.idle_w) * float(t_compute.sum())
    active_j = g.idle_w * float(t_active.sum()) + dynamic_j
    idle_j = g.idle_w * float((t - t_active).sum())
    seconds = float(t.sum())

    def bound(i: int) -> str:
        if t_launch[i] > t_active[i]:
            return "launch"
        return "compute" if t_compute[i] >= t_memory[i] else "memory"

    live = [i for i in range(len(names)) if t[i] > 0]
    return {
        "energy_j": active_j + idle_j,
        "active_j": active_j,
        "idle_j": idle_j,
        "seconds": seconds,
        "active_seconds": float(t_active.sum()),
        "flops": float(ops.sum()),
        "bytes": float(nbytes.sum()),
        "launches": float(n_launch.sum()),
        "launches_by_phase": {p: float(n_launch[i]) for i, p in enumerate(names)},
        "launch_latency_s": float(launch_latency_s),
        "seconds_by_phase": {p: float(t[i]) for i, p in enumerate(names)},
        "compute_bound_phases": [names[i] for i in live if bound(i) == "compute"],
        "memory_bound_phases": [names[i] for i in live if bound(i) == "memory"],
        "launch_bound_phases": [names[i] for i in live if bound(i) == "launch"],
        "active_power_w": active_w,
        "utilisation": float(utilisation),
        "minibatch": int(minibatch),
        "act_batch": int(act_batch),
        "gpu": asdict(g),
    }


def gpu_band(snapshot: LedgerSnapshot, rram_j: float, minibatch: int, act_batch: int = 1,
             launches: Mapping[str, float] | None = None,
             launch_latency_s: float = DEFAULT_LAUNCH_LATENCY_S,
             gpus: tuple[str, ...] = tuple(GPU_PRESETS),
             utilisations: tuple[float, ...] = BAND_UTILISATIONS,
             central_gpu: str = CENTRAL_GPU,
             central_utilisation: float = DEFAULT_UTILISATION) -> dict[str, Any]:
    """GPU/RRAM energy over GPU generations x utilisations: the grid, its bounds and the
    central value, with the assumptions each rests on."""
    grid = []
    for name in gpus:
        for u in utilisations:
            e = gpu_energy(snapshot, minibatch, name, u, act_batch, launches,
                           launch_latency_s)["energy_j"]
            grid.append({"gpu": name, "utilisation": float(u), "gpu_j": e,
                         "gpu_over_rram": _ratio(e, rram_j)})
    ratios = [r["gpu_over_rram"] for r in grid if r["gpu_over_rram"] is not None]
    central = gpu_energy(snapshot, minibatch, central_gpu, central_utilisation, act_batch,
                         launches, launch_latency_s)
    return {
        "grid": grid,
        "low": min(ratios) if ratios else None,
        "high": max(ratios) if ratios else None,
        "central": {"gpu": central_gpu, "utilisation": float(central_utilisation),
                    "launch_latency_s": float(launch_latency_s),
                    "launch_floor": launches is not None,
                    "gpu_j": central["energy_j"],
                    "gpu_over_rram": _ratio(central["energy_j"], rram_j)},
        "gpus": list(gpus), "utilisations": [float(u) for u in utilisations],
        "launches": None if launches is None else {p: float(v) for p, v in launches.items()},
        "power_model": "idle_w over the whole time + achieved FLOP utilisation x "
                       "(TDP - idle_w) while kernels run",
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
        "edram_j": a.edram_bit_j * (float(_col(t, "buffer_bits").sum())
                                    + float(_col(t, "sram_bits").sum()) + on_chip_memory_bits),
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
            episodes: int | None = None, steps: int | None = None,
            launches: Mapping[str, float] | None = None,
            launch_latency_s: float = DEFAULT_LAUNCH_LATENCY_S,
            epochs: int | None = None) -> dict[str, Any]:
    """RRAM vs GPU vs ASIC energy of one workload, with every parameter used.

    Ratios are baseline / RRAM (how many times more energy-efficient the RRAM chip is);
    None when the ledger holds no RRAM energy. With `episodes` / `epochs` / `steps` (how much
    training the snapshot covers) the three energies are also given per episode / per epoch /
    per step. `launches`
    (kernel launches per phase, `dqn_launches`) adds the launch floor; `gpu_band` is the
    GPU/RRAM ratio over GPU generations x utilisations (`gpu_band`).
    """
    rram_j = total(snapshot, tech)
    g = gpu_energy(snapshot, minibatch, gpu, utilisation, act_batch, launches, launch_latency_s)
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
        "gpu_band": gpu_band(snapshot, rram_j, minibatch, act_batch, launches,
                             launch_latency_s),
    }
    for key, count in (("per_episode", episodes), ("per_epoch", epochs), ("per_step", steps)):
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
           "gpu_preset", "asic_preset", "workload_ops", "gpu_bytes", "gpu_energy", "gpu_band",
           "dqn_launches", "classifier_launches", "DEFAULT_LAUNCH_LATENCY_S", "BAND_UTILISATIONS", "CENTRAL_GPU",
           "asic_energy", "compare", "measure_gpu_energy", "DEFAULT_UTILISATION",
           "ARITHMETIC_ROLES"]
