"""Tests for rlime.bench.stats: hand-worked numbers, bootstrap properties, normalisation, Pareto front."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlime.bench.stats import (
    ATARI_REFERENCE_SCORES,
    atari_game_key,
    final_score,
    human_normalized,
    iqm,
    mean_std,
    pareto_front,
    stratified_bootstrap_ci,
)

# --------------------------------------------------------------------------- final_score


def test_final_score_last_100_of_150():
    # returns 1..150; the last 100 are 51..150, mean (51 + 150) / 2 = 100.5
    assert final_score(list(range(1, 151))) == pytest.approx(100.5)


def test_final_score_fewer_than_last_uses_all():
    assert final_score([1.0, 2.0, 6.0]) == pytest.approx(3.0)
    assert final_score([1.0, 2.0, 6.0], last=2) == pytest.approx(4.0)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")]])
def test_final_score_rejects_empty_and_nan(bad):
    with pytest.raises(ValueError):
        final_score(bad)


def test_final_score_rejects_bad_last():
    with pytest.raises(ValueError):
        final_score([1.0], last=0)


# --------------------------------------------------------------------------- mean_std


def test_mean_std_sample_std():
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; ddof=1 -> variance 5/3
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert std == pytest.approx(math.sqrt(5.0 / 3.0))


def test_mean_std_single_value_has_zero_std():
    assert mean_std([7.0]) == (7.0, 0.0)


def test_mean_std_rejects_empty():
    with pytest.raises(ValueError):
        mean_std([])


# --------------------------------------------------------------------------- iqm


def test_iqm_of_1_to_8():
    # n = 8: drop 2 from each end -> mean of [3, 4, 5, 6] = 4.5
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)


def test_iqm_n_not_multiple_of_4():
    # scipy.stats.trim_mean cuts int(0.25 * n) values from each end, rounding DOWN, and
    # averages the rest with equal weights (no fractional weighting of boundary values).
    # n = 10: int(2.5) = 2 cut per side; sorted [0, 0, 1, 2, 3, 4, 5, 6, 100, 1000]
    # -> mean of [1, 2, 3, 4, 5, 6] = 21 / 6 = 3.5
    assert iqm([1000, 3, 0, 5, 1, 100, 6, 2, 0, 4]) == pytest.approx(3.5)
    # n = 5: int(1.25) = 1 cut per side; [1, 2, 3, 4, 100] -> mean of [2, 3, 4] = 3
    assert iqm([100, 4, 1, 3, 2]) == pytest.approx(3.0)
    # n = 3: int(0.75) = 0 -> nothing trimmed, plain mean (1 + 2 + 30) / 3 = 11
    assert iqm([1, 30, 2]) == pytest.approx(11.0)


def test_iqm_pools_2d_and_supports_axis():
    x = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    # pooled: sorted [1, 2, 3, 4, 10, 20, 30, 40], middle four [3, 4, 10, 20] -> 9.25
    assert iqm(x) == pytest.approx(9.25)
    np.testing.assert_allclose(iqm(x, axis=1), [2.5, 25.0])


def test_iqm_rejects_empty_and_nan():
    with pytest.raises(ValueError):
        iqm([])
    with pytest.raises(ValueError):
        iqm([1.0, float("inf")])


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_hand_worked_two_point_sample():
    # One task, runs [0, 1], statistic = mean. A resample is {0,0}, {0,1}/{1,0}, {1,1}:
    # mean 0 w.p. 1/4, 0.5 w.p. 1/2, 1 w.p. 1/4.
    # 95 % interval: quantiles 0.025 and 0.975 -> (0, 1).
    # 40 % interval: quantiles 0.3 and 0.7 both fall in the 0.5 mass (cdf 0.25 .. 0.75).
    lo, hi = stratified_bootstrap_ci({"t": [0.0, 1.0]}, statistic=np.mean, seed=1)
    assert (lo, hi) == (0.0, 1.0)
    lo, hi = stratified_bootstrap_ci({"t": [0.0, 1.0]}, statistic=np.mean, confidence=0.4, seed=1)
    assert (lo, hi) == (0.5, 0.5)


def _two_task_scores(n_runs: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(0.0, 1.0, n_runs), "b": rng.normal(2.0, 1.0, n_runs)}


def test_bootstrap_contains_point_estimate_and_shrinks():
    small = _two_task_scores(10)
    large = _two_task_scores(1000)
    lo_s, hi_s = stratified_bootstrap_ci(small, n_resamples=2000, seed=0)
    lo_l, hi_l = stratified_bootstrap_ci(large, n_resamples=2000, seed=0)
    assert lo_s < iqm(np.concatenate(list(small.values()))) < hi_s
    assert lo_l < iqm(np.concatenate(list(large.values()))) < hi_l
    # width ~ 1/sqrt(n): 100x the runs should give ~10x narrower; ask for > 3x
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3


def test_bootstrap_is_stratified_counts_per_task_kept():
    # Two tasks on very different scales. A pooled (unstratified) bootstrap of the 8 values
    # would vary the number of "large" values per resample (P(exactly 3) ~ 0.28); the
    # stratified one always draws exactly 3 from task b.
    scores = {"a": [0.0, 1.0, 2.0, 3.0, 4.0], "b": [1000.0, 1001.0, 1002.0]}
    count_large = lambda x, axis=-1: np.sum(x >= 500.0, axis=axis)  # noqa: E731
    assert stratified_bootstrap_ci(scores, statistic=count_large, seed=3) == (3.0, 3.0)


def test_bootstrap_resamples_each_task_independently_in_task_order():
    a = np.array([0.0, 1.0, 2.0])
    b = np.array([10.0, 11.0, 12.0])
    seen: list[np.ndarray] = []

    def record(x, axis=-1):
        seen.append(np.array(x))
        return np.mean(x, axis=axis)

    stratified_bootstrap_ci({"a": a, "b": b}, statistic=record, n_resamples=3000, seed=0)
    pooled = np.concatenate(seen, axis=0)
    assert pooled.shape == (3000, 6)
    # task order kept: first 3 columns come from a, last 3 from b
    assert np.isin(pooled[:, :3], a).all() and np.isin(pooled[:, 3:], b).all()
    # with replacement: some resamples repeat a run
    assert (np.ptp(pooled[:, :3], axis=1) < 2).any()
    # independent draws per task: the index pattern of b equals that of a only by chance
    # (1/27 if independent; always, if the draws were paired)
    same = np.all(pooled[:, 3:] - 10.0 == pooled[:, :3], axis=1).mean()
    assert same < 0.1


def test_bootstrap_reproducible_with_seed():
    scores = _two_task_scores(20)
    first = stratified_bootstrap_ci(scores, n_resamples=1000, seed=42)
    assert stratified_bootstrap_ci(scores, n_resamples=1000, seed=42) == first
    assert stratified_bootstrap_ci(scores, n_resamples=1000, seed=43) != first
    assert stratified_bootstrap_ci(scores, n_resamples=1000, seed=np.random.default_rng(42)) == first


def test_bootstrap_list_input_equals_mapping_input():
    scores = _two_task_scores(8)
    as_list = [scores["a"], scores["b"]]
    assert stratified_bootstrap_ci(as_list, n_resamples=500, seed=5) == stratified_bootstrap_ci(
        scores, n_resamples=500, seed=5
    )


def test_bootstrap_single_run_everywhere_is_degenerate_at_point_estimate():
    # iqm of two values trims nothing: (3 + 5) / 2 = 4
    assert stratified_bootstrap_ci({"Pong": [3.0], "Breakout": [5.0]}) == (4.0, 4.0)


def test_bootstrap_single_run_task_enters_every_resample_unchanged():
    seen: list[np.ndarray] = []

    def record(x, axis=-1):
        seen.append(np.array(x))
        return np.mean(x, axis=axis)

    lo, hi = stratified_bootstrap_ci({"one": [7.0], "two": [0.0, 3.0]}, statistic=record, seed=0)
    pooled = np.concatenate(seen, axis=0)
    assert (pooled[:, 0] == 7.0).all()
    # pooled mean is (7 + r1 + r2) / 3 with r in {0, 3}: values 7/3, 10/3, 13/3
    assert lo == pytest.approx(7.0 / 3.0) and hi == pytest.approx(13.0 / 3.0)


def test_bootstrap_non_vectorised_statistic():
    lo, hi = stratified_bootstrap_ci({"t": [0.0, 1.0]}, statistic=lambda x: float(np.mean(x)), n_resamples=500)
    assert (lo, hi) == (0.0, 1.0)


def test_bootstrap_input_errors():
    with pytest.raises(ValueError):
        stratified_bootstrap_ci({})
    with pytest.raises(ValueError):
        stratified_bootstrap_ci({"a": []})
    with pytest.raises(ValueError):
        stratified_bootstrap_ci({"a": [1.0, float("nan")]})
    with pytest.raises(TypeError):
        stratified_bootstrap_ci([1.0, 2.0, 3.0])  # flat list: tasks or runs? refuse
    with pytest.raises(TypeError):
        stratified_bootstrap_ci(np.zeros((3, 2)))  # (runs, tasks) or (tasks, runs)? refuse
    with pytest.raises(ValueError):
        stratified_bootstrap_ci({"a": [1.0, 2.0]}, confidence=1.0)


# --------------------------------------------------------------------------- human_normalized


def test_human_normalized_reference_points():
    assert human_normalized("Pong", 14.6) == pytest.approx(1.0)
    assert human_normalized("Pong", -20.7) == pytest.approx(0.0)
    assert human_normalized("Breakout", 30.5) == pytest.approx(1.0)
    assert human_normalized("Breakout", 1.7) == pytest.approx(0.0)
    # halfway: (16.1 - 1.7) / (30.5 - 1.7) = 14.4 / 28.8 = 0.5
    assert human_normalized("Breakout", 16.1) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "name",
    ["Pong", "pong", "ALE/Pong-v5", "PongNoFrameskip-v4", "Pong-v4", "PongDeterministic-v4", "Pong-ramNoFrameskip-v4"],
)
def test_human_normalized_accepts_short_names_and_ale_ids(name):
    assert atari_game_key(name) == "pong"
    assert human_normalized(name, 14.6) == pytest.approx(1.0)


def test_human_normalized_multiword_names():
    for name in ["ALE/MontezumaRevenge-v5", "montezuma_revenge", "Montezuma's Revenge"]:
        assert human_normalized(name, 4753.3) == pytest.approx(1.0)
    assert human_normalized("ALE/KungFuMaster-v5", 258.5) == pytest.approx(0.0)
    assert human_normalized("UpNDownNoFrameskip-v4", 11693.2) == pytest.approx(1.0)


def test_human_normalized_non_atari():
    assert human_normalized("CartPole-v1", 500.0) is None
    assert human_normalized("ALE/Pooyan-v5", 100.0) is None  # ALE game outside Atari-57
    with pytest.raises(KeyError):
        human_normalized("CartPole-v1", 500.0, strict=True)


def test_atari_table_has_57_games_with_human_above_random():
    assert len(ATARI_REFERENCE_SCORES) == 57
    assert all(h > r for r, h in ATARI_REFERENCE_SCORES.values())


# --------------------------------------------------------------------------- pareto_front


def test_pareto_front_hand_made():
    points = [
        (10.0, 5.0),  # 0 front
        (8.0, 3.0),  # 1 front
        (10.0, 6.0),  # 2 dominated by 0 (same return, more energy)
        (5.0, 3.0),  # 3 dominated by 1 (less return, same energy)
        (12.0, 10.0),  # 4 front (best return)
        (8.0, 3.0),  # 5 duplicate of 1: duplicates do not dominate each other
        (1.0, 1.0),  # 6 front (least energy)
        (0.5, 2.0),  # 7 dominated by 6 on both
    ]
    assert pareto_front(points) == [0, 1, 4, 5, 6]


def test_pareto_front_edge_cases():
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 2.0)]) == [0]
    with pytest.raises(ValueError):
        pareto_front([(1.0, float("nan"))])
    with pytest.raises(ValueError):
        pareto_front([(1.0, 2.0, 3.0)])
