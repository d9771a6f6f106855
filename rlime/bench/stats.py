"""Statistics the rlime leaderboard reports (docs/design.md, "Benchmark protocol").

Per seed, a run is summarised by :func:`final_score` (mean of the last 100 training-episode
returns). Across seeds the leaderboard reports :func:`mean_std`, the interquartile mean
:func:`iqm`, and a stratified-bootstrap 95 % interval for the IQM
(:func:`stratified_bootstrap_ci`), as recommended by Agarwal et al., "Deep Reinforcement
Learning at the Edge of the Statistical Precipice", NeurIPS 2021. Atari scores are also
human-normalised (:func:`human_normalized`), and :func:`pareto_front` picks the
configurations that trade return against energy without being beaten on both.

Why library functions rather than hand-rolled code
--------------------------------------------------
* **IQM = ``scipy.stats.trim_mean(x, 0.25)``.** This is exactly what the reference
  implementation of Agarwal et al. (the ``rliable`` package, ``metrics.aggregate_iqm``) uses,
  so our numbers agree with published IQMs, including the edge case of sample sizes that
  are not a multiple of 4: ``trim_mean`` cuts ``int(0.25 * n)`` values (rounded *down*)
  from each end and takes the plain mean of the rest. So n = 1, 2, 3 trim nothing,
  n = 10 trims 2 from each end and averages the middle 6 (no fractional weighting).
* **Bootstrap = ``scipy.stats.bootstrap(..., paired=False, method="percentile")``.** With
  several samples and ``paired=False`` scipy draws, for every resample, an independent
  set of indices *per sample*, each of that sample's own size (``_bootstrap_resample`` is
  called once per sample). Passing one sample per task therefore gives exactly the
  stratified bootstrap of Agarwal et al.: runs are resampled with replacement *within*
  each task, every resample keeps the per-task run counts, and the statistic is computed
  on the pooled resample. We ask for the percentile interval (the default of
  ``rliable.library.get_interval_estimates``) rather than scipy's default BCa, because BCa returns NaN for degenerate bootstrap
  distributions (e.g. all runs of a task equal) and needs jackknife passes over the data.
  scipy validates inputs, batches the work and is well tested; the only thing we add is
  the handling of tasks with a single run (see :func:`stratified_bootstrap_ci`).
* **Pareto front** has no scipy/numpy routine; it is a few lines of vectorised numpy
  (O(n^2) comparisons, fine for leaderboard-sized tables) rather than a new dependency.

Pure numpy/scipy: nothing here imports torch or RL code.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import numpy as np
from scipy import stats as _sps

__all__ = [
    "ATARI_REFERENCE_SCORES",
    "atari_game_key",
    "atari_reference_scores",
    "final_score",
    "human_normalized",
    "iqm",
    "mean_std",
    "pareto_front",
    "stratified_bootstrap_ci",
]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _as_finite_1d(values: Any, what: str) -> np.ndarray:
    """Return ``values`` as a non-empty, finite, 1-D float64 array or raise ``ValueError``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D sequence of numbers, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what}: empty input")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: input contains NaN or infinite values")
    return arr


# ---------------------------------------------------------------------------------------------
# per-seed and across-seed summaries
# ---------------------------------------------------------------------------------------------


def final_score(returns: Sequence[float], last: int = 100) -> float:
    """Mean of the last ``last`` training-episode returns of one run (one seed).

    Args:
        returns: 1-D sequence of episode returns in the order the episodes finished
            (raw game scores, per docs/design.md).
        last: how many of the most recent episodes to average (>= 1). If the run has fewer
            episodes, all of them are averaged.

    Returns:
        ``mean(returns[-last:])`` as a Python float.

    Raises:
        ValueError: if ``returns`` is empty or non-finite, or ``last < 1``.
    """
    if isinstance(last, bool) or int(last) != last or last < 1:
        raise ValueError(f"final_score: `last` must be a positive integer, got {last!r}")
    arr = _as_finite_1d(returns, "final_score")
    return float(np.mean(arr[-int(last):]))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation across seeds.

    Args:
        values: 1-D sequence of per-seed scores (e.g. :func:`final_score` of each seed).

    Returns:
        ``(mean, std)`` where ``std`` uses ``ddof=1`` (the unbiased-variance sample std).
        With a single value the spread is not estimable; by convention this returns
        ``std = 0.0`` (not NaN) so tables stay printable -- a one-seed row should be read as
        "no spread information", not "no spread".

    Raises:
        ValueError: on empty or non-finite input.
    """
    arr = _as_finite_1d(values, "mean_std")
    mean = float(np.mean(arr))
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else 0.0
    return mean, std


def iqm(values: Any, *, axis: int | None = None) -> Any:
    """Interquartile mean (Agarwal et al. 2021): the 25 % trimmed mean on each side.

    Computed with ``scipy.stats.trim_mean(values, 0.25, axis)``, which sorts, removes
    ``int(0.25 * n)`` values (rounded down) from each end, and averages the rest -- the same
    call ``rliable`` uses. For n < 4 nothing is trimmed (the IQM is the plain mean).

    Args:
        values: scores; with ``axis=None`` any shape, flattened (pooled) first.
        axis: keyword-only; ``None`` (default) pools everything and returns a float. An
            integer computes along that axis and returns an ndarray (used to vectorise the
            bootstrap; shape = ``values.shape`` without ``axis``).

    Returns:
        The IQM as a Python float (``axis=None``) or an ndarray.

    Raises:
        ValueError: on empty or non-finite input.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("iqm: empty input")
    if not np.all(np.isfinite(arr)):
        raise ValueError("iqm: input contains NaN or infinite values")
    if axis is None:
        return float(_sps.trim_mean(arr.reshape(-1), 0.25))
    return _sps.trim_mean(arr, 0.25, axis=axis)


# ---------------------------------------------------------------------------------------------
# stratified bootstrap
# ---------------------------------------------------------------------------------------------

_MAX_BATCH_ELEMENTS = 1 << 22

ScoresPerTask = Union[Mapping[str, Sequence[float]], Sequence[Sequence[float]]]


def _strata(scores_per_task: ScoresPerTask) -> list[np.ndarray]:
    """Validate and return one finite 1-D float array per task, in the given order."""
    if isinstance(scores_per_task, np.ndarray):
        # A 2-D array is ambiguous: rliable uses (runs, tasks), others (tasks, runs).
        raise TypeError(
            "stratified_bootstrap_ci: pass a mapping {task: scores} or a list with one 1-D "
            "array per task, not an ndarray (for an rliable-style (runs, tasks) array `a`, "
            "pass list(a.T))"
        )
    if isinstance(scores_per_task, Mapping):
        items = list(scores_per_task.items())
    else:
        items = list(enumerate(scores_per_task))
    if not items:
        raise ValueError("stratified_bootstrap_ci: no tasks given")
    strata = []
    for name, scores in items:
        if np.ndim(scores) == 0:
            raise TypeError(
                "stratified_bootstrap_ci: each task needs a sequence of per-run scores; got "
                f"the scalar {scores!r} for task {name!r}. For a single task pass [scores] "
                "or {'task': scores}."
            )
        strata.append(_as_finite_1d(scores, f"stratified_bootstrap_ci (task {name!r})"))
    return strata


def _rng_kwarg(seed: int | np.random.Generator | None) -> dict[str, Any]:
    """Seed keyword for scipy.stats.bootstrap: ``rng`` since scipy 1.15, else ``random_state``."""
    gen = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if "rng" in inspect.signature(_sps.bootstrap).parameters:
        return {"rng": gen}
    return {"random_state": gen}


def stratified_bootstrap_ci(
    scores_per_task: ScoresPerTask,
    statistic: Callable[..., Any] = iqm,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | np.random.Generator | None = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of an aggregate statistic by stratified bootstrap.

    One bootstrap replicate: for every task (stratum) independently, draw ``n_t`` runs with
    replacement from that task's ``n_t`` runs; concatenate the per-task resamples in task
    order into one pooled array of length ``N = sum(n_t)``; apply ``statistic`` to it. The
    interval is the ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles of
    ``n_resamples`` replicates (Agarwal et al. 2021; implemented by
    ``scipy.stats.bootstrap(paired=False, method="percentile")``, see module docstring).

    Args:
        scores_per_task: ``{task: per-run scores}`` or a sequence with one 1-D sequence of
            per-run scores per task. Tasks may have different numbers of runs. Scores should
            already be on a common scale (e.g. human-normalised) if tasks are pooled.
        statistic: callable on the pooled 1-D array returning a scalar; default :func:`iqm`.
            If it accepts an ``axis`` keyword it is called on ``(batch, N)`` arrays of
            replicates with ``axis=-1`` and must return shape ``(batch,)`` (like
            ``np.mean`` or :func:`iqm`); otherwise it is applied to each replicate
            separately (slower). Results are cast to float64.
        confidence: two-sided confidence level in (0, 1).
        n_resamples: number of bootstrap replicates (>= 1).
        seed: int, ``np.random.Generator`` or ``None``. The same int gives the same
            interval; ``None`` draws fresh entropy.

    Returns:
        ``(low, high)`` as Python floats.

    Single runs: a task with one run is resampled to itself in every replicate (the only
    draw possible), so it enters every pooled replicate unchanged -- this is exact, not a
    workaround for scipy's "two or more observations" rule. If *every* task has a single
    run, the bootstrap distribution is a single point and the interval is degenerate:
    ``(s, s)`` with ``s = statistic(pooled scores)``.

    Raises:
        ValueError: no tasks, an empty or non-finite task, or bad ``confidence`` /
            ``n_resamples``.
        TypeError: an ndarray (ambiguous layout) or scalar per-task entries.
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"stratified_bootstrap_ci: confidence must be in (0, 1), got {confidence!r}")
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(
            f"stratified_bootstrap_ci: n_resamples must be a positive integer, got {n_resamples!r}"
        )
    strata = _strata(scores_per_task)

    try:
        vectorized = "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):  # some builtins/ufuncs have no inspectable signature
        vectorized = False

    def stat_pooled(pooled: np.ndarray) -> np.ndarray:
        """statistic along the last axis of ``pooled`` (shape (..., N))."""
        if vectorized:
            return np.asarray(statistic(pooled, axis=-1), dtype=np.float64)
        return np.apply_along_axis(lambda row: float(statistic(row)), -1, pooled)

    pooled_all = np.concatenate(strata)
    # Tasks with one run are constant under resampling: keep them fixed, resample the rest.
    varying = [i for i, s in enumerate(strata) if s.size > 1]
    if not varying:
        point = float(stat_pooled(pooled_all[np.newaxis, :])[0])
        return point, point

    def pooled_statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        # scipy moves the observation axis last and hands each varying task a resample of
        # shape (batch, n_t); rebuild the pooled array in task order.
        if axis != -1:
            resampled = tuple(np.moveaxis(r, axis, -1) for r in resampled)
        lead = resampled[0].shape[:-1]
        parts: list[np.ndarray] = []
        it = iter(resampled)
        for s in strata:
            parts.append(next(it) if s.size > 1 else np.broadcast_to(s, lead + (1,)))
        return stat_pooled(np.concatenate(parts, axis=-1))

    # Cap one batch of pooled resamples at ~4M float64 (32 MB); the batch size depends only on
    # the data shape, so results stay reproducible for a given seed.
    batch = max(1, min(int(n_resamples), _MAX_BATCH_ELEMENTS // pooled_all.size))
    res = _sps.bootstrap(
        [strata[i] for i in varying],
        pooled_statistic,
        n_resamples=int(n_resamples),
        batch=batch,
        vectorized=True,
        paired=False,
        axis=-1,
        confidence_level=float(confidence),
        alternative="two-sided",
        method="percentile",
        **_rng_kwarg(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


# ---------------------------------------------------------------------------------------------
# Atari human normalisation
# ---------------------------------------------------------------------------------------------

# Atari-57 (random, human) reference scores: random = uniformly random actions, human =
# professional game tester; 30 random no-ops at episode start, episodes capped at 108k frames.
# Source: Badia et al. 2020, "Agent57: Outperforming the Atari Human Benchmark" (ICML), appendix
# table of random and human scores (the numbers introduced by Mnih et al. 2015, Nature, and
# extended to 57 games by van Hasselt et al. 2016 / Wang et al. 2016); transcribed here as
# tabulated in DeepMind's DQN Zoo, dqn_zoo/atari_data.py. Note Video Pinball: random 16256.9,
# which other evaluation protocols sometimes find above the human score.
# Keys are "compact" names: lower case, letters and digits only (see atari_game_key).
ATARI_REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7),
    "atlantis": (12850.0, 29028.1),
    "bankheist": (14.2, 753.1),
    "battlezone": (2360.0, 37187.5),
    "beamrider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "centipede": (2090.9, 12017.0),
    "choppercommand": (811.0, 7387.8),
    "crazyclimber": (10780.5, 35829.4),
    "defender": (2874.5, 18688.9),
    "demonattack": (152.1, 1971.0),
    "doubledunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "fishingderby": (-91.7, -38.7),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4),
    "hero": (1027.0, 30826.4),
    "icehockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kungfumaster": (258.5, 22736.3),
    "montezumarevenge": (0.0, 4753.3),
    "mspacman": (307.3, 6951.6),
    "namethisgame": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6),
    "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6),
    "privateeye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0),
    "roadrunner": (11.5, 7845.0),
    "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7),
    "skiing": (-17098.1, -4336.9),
    "solaris": (1236.3, 12326.7),
    "spaceinvaders": (148.0, 1668.7),
    "stargunner": (664.0, 10250.0),
    "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3),
    "timepilot": (3568.0, 5229.2),
    "tutankham": (11.4, 167.6),
    "upndown": (533.4, 11693.2),
    "venture": (0.0, 1187.5),
    "videopinball": (16256.9, 17667.9),
    "wizardofwor": (563.5, 4756.5),
    "yarsrevenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}

# Spellings whose compact form differs from the table key.
_ALIASES = {"montezumasrevenge": "montezumarevenge"}

# Gymnasium/ALE id variants: "Pong-ram", "PongNoFrameskip", "Pong-ramDeterministic" (after "-vN").
_ALE_VARIANT = re.compile(r"(-ram)?(NoFrameskip|Deterministic)?$", re.IGNORECASE)


def atari_game_key(game: str) -> str:
    """Compact key for an Atari game name or Gymnasium/ALE id.

    ``"Pong"``, ``"pong"``, ``"ALE/Pong-v5"``, ``"PongNoFrameskip-v4"``, ``"Pong-ramDeterministic-v4"``
    -> ``"pong"``; ``"montezuma_revenge"``, ``"ALE/MontezumaRevenge-v5"`` -> ``"montezumarevenge"``.
    The result is only a key: it need not be an Atari game (``"CartPole-v1"`` -> ``"cartpole"``).
    """
    name = game.strip()
    name = name.rsplit("/", 1)[-1]  # "ALE/Pong-v5" -> "Pong-v5"
    name = re.sub(r"-v\d+$", "", name)  # version
    name = _ALE_VARIANT.sub("", name, count=1)  # NoFrameskip / Deterministic / -ram variants
    key = re.sub(r"[^0-9a-z]", "", name.lower())
    return _ALIASES.get(key, key)


def atari_reference_scores(game: str) -> tuple[float, float] | None:
    """``(random, human)`` reference scores for an Atari-57 game, or ``None`` if not one."""
    return ATARI_REFERENCE_SCORES.get(atari_game_key(game))


def human_normalized(game: str, score: float, *, strict: bool = False) -> float | None:
    """Human-normalised score ``(score - random) / (human - random)``.

    0 is uniformly-random play and 1 is the professional human tester of the standard Atari-57
    protocol (:data:`ATARI_REFERENCE_SCORES`). ``game`` may be a short name (``"Pong"``) or a
    Gymnasium/ALE id (``"ALE/Pong-v5"``, ``"PongNoFrameskip-v4"``).

    Returns:
        The normalised score as a float; ``None`` for environments with no Atari-57 reference
        (``"CartPole-v1"``, or ALE games outside the 57 such as ``"ALE/Pooyan-v5"``), so a
        leaderboard can call it on every row. Pass ``strict=True`` to raise ``KeyError``
        instead (useful to catch a misspelt Atari name).
    """
    ref = atari_reference_scores(game)
    if ref is None:
        if strict:
            raise KeyError(f"no Atari-57 random/human reference score for {game!r}")
        return None
    random_score, human_score = ref
    return (float(score) - random_score) / (human_score - random_score)


# ---------------------------------------------------------------------------------------------
# return vs energy
# ---------------------------------------------------------------------------------------------


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the configurations not dominated in (return up, energy down).

    Args:
        points: sequence of ``(return, energy)`` pairs, one per configuration (shape (n, 2)).

    Returns:
        Sorted list of indices ``i`` such that no ``j`` has ``return_j >= return_i`` and
        ``energy_j <= energy_i`` with at least one inequality strict. Exact duplicates do not
        dominate each other, so all copies of a front point are kept. Empty input -> ``[]``.

    Raises:
        ValueError: if the points are not (n, 2) or contain NaN (NaN would make dominance
            undefined; +/-inf is allowed).
    """
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return []
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"pareto_front: expected (return, energy) pairs, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("pareto_front: points contain NaN")
    ret, energy = arr[:, 0], arr[:, 1]
    # no_worse[j, i]: j is at least as good as i on both objectives; better: strictly on one.
    no_worse = (ret[:, None] >= ret[None, :]) & (energy[:, None] <= energy[None, :])
    better = (ret[:, None] > ret[None, :]) | (energy[:, None] < energy[None, :])
    dominated = (no_worse & better).any(axis=0)
    return [int(i) for i in np.flatnonzero(~dominated)]
