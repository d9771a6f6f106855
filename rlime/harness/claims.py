"""The paper's claims next to what rlime measures (`python -m rlime.report --claims RUN...`).

TIME (Cheng et al., DAC 2017 / TCAD 2018) claims: deep RL trained in memory is on average 126x
more energy-efficient than a GPU; supervised learning 5.3x more than DaDianNao (MNIST); and up
to two orders of magnitude over the ASIC if the cost of tuning RRAM can be reduced further.
Each row gives the paper's number, rlime's for the runs given (the configuration stated), and
what drives the difference, computed from the same re-priced summaries `rlime.report` prints:
DQN runs (`python -m rlime.train`) fill the deep-RL row, supervised runs (`python -m rlime.sl`,
the `paper_sl` suite) the DaDianNao row.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

PAPER_GPU_OVER_RRAM_DRL = 126.0   # TIME: "126x on average" vs a GPU, deep RL
PAPER_ASIC_OVER_RRAM_SL = 5.3     # TIME: vs DaDianNao, supervised learning on MNIST
PAPER_ASIC_OVER_RRAM_CHEAP_TUNING = 100.0  # "two orders of magnitude" with cheaper tuning


def _spread(values: Sequence[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    mean = float(np.mean(values))
    return f"{mean:,.1f}x" if lo == hi else f"{mean:,.1f}x (runs {lo:,.1f}-{hi:,.1f}x)"


def _configuration(runs: Sequence[dict[str, Any]], what: str, skipped: int) -> str:
    names = ", ".join(r["dir"].name for r in runs) or "none"
    return f"{len(runs)} {what} run(s): {names}" + (
        f"; {skipped} float run(s) left out" if skipped else "")


def _tuning(summaries: Sequence[dict[str, Any]]) -> str:
    shares = [s["energy"]["tuning"] / s["energy_j"] for s in summaries if s["energy_j"] > 0]
    return (f"tuning is {100 * float(np.mean(shares)):.2f} % of the RRAM energy"
            if shares else "no RRAM energy")


def claims(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (claim, paper, rlime, configuration, drivers) from `report.reprice_run` results:
    DQN runs fill the deep-RL row, supervised runs (kind "sl", `python -m rlime.sl`) the
    DaDianNao row, all of them the cheaper-tuning row; runs that counted nothing on the chip
    (float backend) are left out and said so."""
    chip = [r for r in runs if r["parts"]["total"].table.any()]
    skipped = {kind: sum(r.get("kind", "dqn") == kind for r in runs if r not in chip)
               for kind in ("dqn", "sl")}
    drl = [r for r in chip if r.get("kind", "dqn") == "dqn"]
    sl = [r for r in chip if r.get("kind") == "sl"]
    config = _configuration(drl, "RRAM", skipped["dqn"])
    summaries = [r["summary"] for r in drl]
    sl_summaries = [r["summary"] for r in sl]
    tuning = _tuning(summaries)
    gpu = [s["baselines"]["gpu_over_rram"] for s in summaries]
    asic = [s["baselines"]["asic_over_rram"] for s in summaries]
    sweep_top = [s["tuning_sweep"][-1] for s in summaries + sl_summaries if s["tuning_sweep"]]
    ks = sorted({row["k"] for row in sweep_top})
    models = {(s["baselines"]["gpu_model"]["gpu"]["name"], s["baselines"]["utilisation"])
              for s in summaries}
    gpu_model = ", ".join(f"{name} at utilisation {u:g}" for name, u in sorted(models))
    return [
        {"claim": "deep RL: RRAM vs GPU", "paper": f"{PAPER_GPU_OVER_RRAM_DRL:g}x",
         "rlime": _spread(gpu) if drl else "not measured", "configuration": config,
         "drivers": f"GPU modelled as {gpu_model or '-'} (its compute-bound time scales with "
                    f"1 / utilisation); {tuning}"},
        _sl_row(sl, skipped["sl"], asic),
        {"claim": "with cheaper tuning: RRAM vs ASIC",
         "paper": f"~{PAPER_ASIC_OVER_RRAM_CHEAP_TUNING:g}x",
         "rlime": (_spread([row["asic_over_rram"] for row in sweep_top])
                   + (f" at k = {', '.join(f'{k:g}' for k in ks)}" if ks else "")),
         "configuration": (_configuration(drl + sl, "RRAM", sum(skipped.values()))
                           + " (write pulses and verify reads k times cheaper)"),
         "drivers": f"{_tuning(summaries + sl_summaries)}, so dividing it by k can raise the "
                    f"ratio by at most 1 / (1 - share) over the k = 1 value "
                    f"{_spread([s['baselines']['asic_over_rram'] for s in summaries + sl_summaries])}"},
    ]


def _sl_row(sl: Sequence[dict[str, Any]], skipped: int, drl_asic: Sequence[float]
            ) -> dict[str, Any]:
    """The supervised-learning row (TIME: 5.3x vs DaDianNao on MNIST) from supervised runs."""
    row = {"claim": "supervised learning: RRAM vs DaDianNao", "paper": f"{PAPER_ASIC_OVER_RRAM_SL:g}x"}
    if not sl:
        return {**row, "rlime": "not measured", "configuration": "-",
                "drivers": "no supervised run given (python -m rlime.sl; the paper_sl suite); "
                           f"the DRL runs above give ASIC/RRAM {_spread(drl_asic)}"}
    summaries = [r["summary"] for r in sl]
    tasks = sorted({f"{s['dataset']} {s['update_mode']}" for s in summaries})
    data = [s["energy"].get("data", 0.0) / s["energy_j"] for s in summaries if s["energy_j"] > 0]
    accuracy = [s["test_accuracy"] for s in summaries if s.get("test_accuracy") is not None]
    ops = [s["baselines"]["asic_model"]["ops_j"] / s["baselines"]["asic_j"] for s in summaries
           if s["baselines"]["asic_j"] > 0]
    return {**row, "rlime": _spread([s["baselines"]["asic_over_rram"] for s in summaries]),
            "configuration": f"{', '.join(tasks)}: "
                             + _configuration(sl, "supervised RRAM", skipped),
            "drivers": f"DaDianNao priced per 16-bit op at peak (node power / peak throughput), "
                       f"{100 * float(np.mean(ops)):.1f} % of its energy in arithmetic; "
                       f"{_tuning(summaries)}; reading the minibatches from off-chip DRAM, "
                       f"the same on both chips, is {100 * float(np.mean(data)):.1f} % of the "
                       f"RRAM energy (without it ASIC/RRAM is "
                       f"{_spread([s['without_data']['asic_over_rram'] for s in summaries])}); "
                       f"test accuracy "
                       f"{100 * float(np.mean(accuracy)):.1f} % (mean over the runs)"}


def format_claims(rows: Sequence[dict[str, Any]]) -> str:
    """The claims as a Markdown table."""
    lines = ["| claim | paper | rlime | configuration | what drives the difference |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['claim']} | {r['paper']} | {r['rlime']} | {r['configuration']} | "
              f"{r['drivers']} |" for r in rows]
    return "\n".join(lines)
