"""Tests for the environment factory (package ``envs``)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from envs import EnvSpec, known_env_names, make_vector_env, resolve_env

PROTOCOL_KEYS = {
    "env_id",
    "env_version",
    "frameskip",
    "repeat_action_probability",
    "action_set",
    "terminal_on_life_loss",
    "reward_clipping",
    "max_episode_steps",
    "max_num_frames_per_episode",
    "noop_max",
    "frame_stack",
    "screen_size",
    "grayscale",
}


def _capped(name: str, frames: int) -> EnvSpec:
    """The env's spec with a short episode cap (in emulator frames), to reach truncation fast."""
    spec = resolve_env(name)
    return dataclasses.replace(spec, protocol={**spec.protocol, "max_num_frames_per_episode": frames})


# ---------------------------------------------------------------------------------------------
# resolution
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, env_id, family, kind",
    [
        ("CartPole", "CartPole-v1", "classic", "vector"),
        ("Acrobot", "Acrobot-v1", "classic", "vector"),
        ("MountainCar", "MountainCar-v0", "classic", "vector"),
        ("Pong", "ALE/Pong-v5", "atari", "pixels"),
        ("Breakout", "ALE/Breakout-v5", "atari", "pixels"),
        ("SpaceInvaders", "ALE/SpaceInvaders-v5", "atari", "pixels"),
        ("MsPacman", "ALE/MsPacman-v5", "atari", "pixels"),
    ],
)
def test_short_names(name, env_id, family, kind):
    spec = resolve_env(name)
    assert isinstance(spec, EnvSpec)
    assert (spec.env_id, spec.family, spec.observation_kind, spec.name) == (env_id, family, kind, name)
    assert spec.protocol["env_id"] == env_id


@pytest.mark.parametrize("name", ["pong", "PONG", "pOnG", " Pong "])
def test_short_names_are_case_insensitive(name):
    assert resolve_env(name).env_id == "ALE/Pong-v5"


def test_case_insensitive_and_rom_style_names():
    assert resolve_env("cartpole").env_id == "CartPole-v1"
    assert resolve_env("MOUNTAINCAR").env_id == "MountainCar-v0"
    assert resolve_env("space_invaders").env_id == "ALE/SpaceInvaders-v5"
    assert resolve_env("ms_pacman").env_id == "ALE/MsPacman-v5"


def test_full_ids():
    assert resolve_env("ALE/Pong-v5").env_id == "ALE/Pong-v5"
    assert resolve_env("ale/pong-v5").env_id == "ALE/Pong-v5"
    assert resolve_env("Pong-v5").env_id == "ALE/Pong-v5"
    assert resolve_env("CartPole-v1").name == "CartPole"
    assert resolve_env("Acrobot-v1").family == "classic"
    nf = resolve_env("PongNoFrameskip-v4")
    assert nf.family == "atari" and nf.protocol["repeat_action_probability"] == 0.0
    assert nf.protocol["frameskip"] == 4 and nf.protocol["env_version"] == 4
    other = resolve_env("Pendulum-v1")  # any registered id works
    assert other.env_id == "Pendulum-v1" and other.observation_kind == "vector"


def test_known_env_names_come_from_registry():
    names = known_env_names()
    import ale_py

    gym.register_envs(ale_py)
    ale_v5 = [k for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5")]
    assert len(ale_v5) > 50
    minatar_v1 = [k for k in gym.registry if k.startswith("MinAtar/") and k.endswith("-v1")]
    assert len(minatar_v1) == 5
    assert len(names) == len(ale_v5) + 3 + len(minatar_v1)
    for n in ("CartPole", "Acrobot", "MountainCar", "Pong", "Breakout", "SpaceInvaders", "Seaquest",
              "Breakout-MinAtar", "SpaceInvaders-MinAtar"):
        assert n in names
    assert names == sorted(names)
    assert "ALE/Pong-v5" in known_env_names(include_ids=True)


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError) as exc:
        resolve_env("Pongg")
    msg = str(exc.value)
    assert "'Pongg'" in msg
    assert "Did you mean 'Pong'" in msg
    assert "short names" in msg and "Gymnasium id" in msg
    with pytest.raises(ValueError, match="CartPole"):
        resolve_env("Cartpol")
    with pytest.raises(ValueError, match="Unknown environment"):
        resolve_env("NoSuchThing")


def test_stochastic_frameskip_atari_ids_are_refused():
    with pytest.raises(ValueError, match="ALE/Pong-v5"):
        resolve_env("Pong-v4")


# ---------------------------------------------------------------------------------------------
# protocol
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Pong", "CartPole"])
def test_protocol_has_all_keys_and_is_serialisable(name):
    p = resolve_env(name).protocol
    missing = PROTOCOL_KEYS - set(p)
    assert not missing, missing
    assert all(v is not None for v in p.values())
    assert json.loads(json.dumps(p)) == p


def test_atari_protocol_values():
    p = resolve_env("Pong").protocol
    assert p["env_id"] == "ALE/Pong-v5" and p["env_version"] == 5
    assert p["frameskip"] == 4 and p["maxpool"] is True
    assert p["repeat_action_probability"] == 0.25
    assert p["action_set"] == "minimal"
    assert p["terminal_on_life_loss"] is False
    assert p["noop_max"] == 30 and p["frame_stack"] == 4
    assert p["screen_size"] == 84 and p["grayscale"] is True
    assert p["max_num_frames_per_episode"] == 108_000 and p["max_episode_steps"] == 27_000
    assert p["reward_clipping"] == "clip[-1,1]"
    assert "learning only" in p["reward_clipping_scope"] and "raw" in p["logged_return"]
    assert resolve_env("Pong").reward_clip == (-1.0, 1.0)
    c = resolve_env("CartPole").protocol
    assert c["max_episode_steps"] == 500 and c["reward_clipping"] == "none"
    assert resolve_env("CartPole").reward_clip is None


def test_env_protocol_records_life_loss_setting():
    train = make_vector_env("Pong", 1, seed=0, terminal_on_life_loss=True)
    evaluation = make_vector_env("Pong", 1, seed=0, terminal_on_life_loss=True, eval_mode=True)
    cart = make_vector_env("CartPole", 1, seed=0, terminal_on_life_loss=True)
    try:
        assert train.protocol["terminal_on_life_loss"] is True
        assert evaluation.protocol["terminal_on_life_loss"] is False
        assert cart.protocol["terminal_on_life_loss"] is False  # no lives in CartPole
        # apart from that one flag, evaluation runs the training protocol
        assert {**train.protocol, "terminal_on_life_loss": False} == evaluation.protocol
    finally:
        for e in (train, evaluation, cart):
            e.close()


# ---------------------------------------------------------------------------------------------
# observations, rewards
# ---------------------------------------------------------------------------------------------


def test_atari_observations():
    env = make_vector_env("Pong", 2, seed=0)
    try:
        assert env.single_observation_space.shape == (4, 84, 84)
        assert env.observation_space.shape == (2, 4, 84, 84)
        assert env.single_observation_space.dtype == np.uint8
        obs, info = env.reset()
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert np.all(obs[:, :3] == 0) and obs[:, 3].mean() > 0  # zero-padded stack after reset
        assert env.single_action_space.n == 6  # minimal action set for Pong
        obs, rew, term, trunc, info = env.step(np.zeros(2, dtype=np.int64))
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert rew.dtype == np.float64 and term.dtype == bool and trunc.dtype == bool
        frames0 = info["episode_frame_number"].copy()
        env.step(np.zeros(2, dtype=np.int64))
        # one agent step = 4 emulator frames (frameskip applied once, not 4 x 4)
        assert np.all(env.step(np.zeros(2, dtype=np.int64))[4]["episode_frame_number"] - frames0 == 8)
    finally:
        env.close()


def test_classic_observations_are_float32():
    env = make_vector_env("CartPole", 3, seed=0)
    try:
        obs, _ = env.reset()
        assert obs.shape == (3, 4) and obs.dtype == np.float32
        obs, rew, *_ = env.step(np.zeros(3, dtype=np.int64))
        assert obs.dtype == np.float32 and rew.dtype == np.float64
    finally:
        env.close()


def test_atari_rewards_are_raw_not_clipped():
    # Space Invaders aliens are worth 5..30 points: a clipping env would never return > 1.
    env = make_vector_env("SpaceInvaders", 4, seed=0)
    try:
        env.reset()
        best = 0.0
        for _ in range(1000):
            _, rew, *_ = env.step(env.action_space.sample())
            best = max(best, float(rew.max()))
            if best > 1:
                break
        assert best > 1.0
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------
# autoreset + info semantics
# ---------------------------------------------------------------------------------------------


def _lockstep_until_done(env_a, env_b, actions_fn, max_steps):
    """Step two identically seeded envs with the same actions until env 0 is done."""
    for t in range(max_steps):
        a = actions_fn(t)
        out_a, out_b = env_a.step(a), env_b.step(a)
        np.testing.assert_array_equal(out_a[0], out_b[0])
        term, trunc, info = out_a[2], out_a[3], out_a[4]
        np.testing.assert_array_equal(info["game_over"], term | trunc)
        assert not info["autoreset"].any()
        if term[0] or trunc[0]:
            return out_a
    raise AssertionError("episode did not end")


def _check_next_step_autoreset(env_a, env_b, terminal_obs, n_actions):
    # The step after the end ignores the action: two different actions give the same result.
    a = np.zeros(env_a.num_envs, dtype=np.int64)
    b = a.copy()
    b[0] = n_actions - 1
    obs_a, rew_a, term_a, trunc_a, info_a = env_a.step(a)
    obs_b, *_ = env_b.step(b)
    np.testing.assert_array_equal(obs_a[0], obs_b[0])
    assert rew_a[0] == 0.0 and not term_a[0] and not trunc_a[0]
    assert info_a["autoreset"][0] and not info_a["game_over"][0]
    assert not np.array_equal(obs_a[0], terminal_obs)
    return obs_a


def test_cartpole_next_step_autoreset():
    env_a, env_b = make_vector_env("CartPole", 2, seed=7), make_vector_env("CartPole", 2, seed=7)
    try:
        env_a.reset(), env_b.reset()
        obs, rew, term, trunc, info = _lockstep_until_done(
            env_a, env_b, lambda t: np.zeros(2, dtype=np.int64), 200
        )
        assert term[0] and info["game_over"][0]
        assert info["game_length"][0] > 0 and info["game_return"][0] == info["game_length"][0]
        obs = _check_next_step_autoreset(env_a, env_b, obs[0], 2)
        assert np.all(np.abs(obs[0]) <= 0.05)  # CartPole's initial-state range
    finally:
        env_a.close(), env_b.close()


def test_pong_next_step_autoreset_after_truncation():
    spec = _capped("Pong", 200)  # 200 frames = 50 agent steps
    env_a, env_b = make_vector_env(spec, 2, seed=3), make_vector_env(spec, 2, seed=3)
    try:
        env_a.reset(), env_b.reset()
        rng = np.random.default_rng(0)
        obs, rew, term, trunc, info = _lockstep_until_done(
            env_a, env_b, lambda t: rng.integers(0, 6, size=2), 60
        )
        assert trunc.all() and not term.any() and info["game_over"].all()
        assert np.all(info["game_length"] == 50)
        obs2 = _check_next_step_autoreset(env_a, env_b, obs[0], 6)
        assert np.all(obs2[:, :3] == 0)  # fresh frame stack
    finally:
        env_a.close(), env_b.close()


def test_pong_full_game_terminates_with_raw_score():
    env = make_vector_env("Pong", 1, seed=0)
    try:
        env.reset()
        total = 0.0
        for steps in range(1, 5000):
            obs, rew, term, trunc, info = env.step(env.action_space.sample())
            total += rew[0]
            assert info["game_over"][0] == (term[0] or trunc[0])
            if info["game_over"][0]:
                break
        assert term[0]
        assert info["game_return"][0] == total and -21 <= total <= 21 and total != 0
        assert info["game_length"][0] == steps
        obs, rew, term, trunc, info = env.step(np.array([1]))
        assert rew[0] == 0 and not term[0] and not trunc[0] and info["autoreset"][0]
        assert np.all(obs[0, :3] == 0)
    finally:
        env.close()


def test_classic_game_over_on_truncation():
    env = make_vector_env("MountainCar", 2, seed=0)  # random play never reaches the flag
    try:
        env.reset()
        for t in range(1, 201):
            _, rew, term, trunc, info = env.step(env.action_space.sample())
            np.testing.assert_array_equal(info["game_over"], term | trunc)
        assert trunc.all() and info["game_over"].all()
        assert np.all(info["game_length"] == 200) and np.all(info["game_return"] == -200)
        _, rew, term, trunc, info = env.step(env.action_space.sample())
        assert np.all(rew == 0) and info["autoreset"].all() and not info["game_over"].any()
    finally:
        env.close()


def test_life_loss_termination_keeps_the_game_going():
    env_a = make_vector_env("Breakout", 1, seed=1, terminal_on_life_loss=True)
    env_b = make_vector_env("Breakout", 1, seed=1, terminal_on_life_loss=True)
    try:
        _, info = env_a.reset()
        env_b.reset()
        assert info["lives"][0] == 5
        rng = np.random.default_rng(0)
        total, life_losses = 0.0, 0
        for _ in range(3000):
            a = rng.integers(0, 4, size=1)
            obs, rew, term, trunc, info = env_a.step(a)
            np.testing.assert_array_equal(obs, env_b.step(a)[0])
            total += rew[0]
            if info["life_lost"][0]:
                life_losses += 1
                assert term[0] and not info["game_over"][0]
                lives, frame = info["lives"][0], info["episode_frame_number"][0]
                # The next step ignores the action (NOOP is sent): FIRE and LEFT give the same frame.
                obs, rew, term, trunc, info = env_a.step(np.array([1]))
                np.testing.assert_array_equal(obs, env_b.step(np.array([3]))[0])
                assert info["autoreset"][0] and rew[0] == 0 and not term[0]
                assert info["lives"][0] == lives  # same game, not reset
                assert info["episode_frame_number"][0] == frame + 4
            if info["game_over"][0]:
                break
        assert info["game_over"][0] and term[0]
        assert life_losses == 4  # 5 lives: 4 life-loss terminations, then game over
        assert info["game_return"][0] == total
    finally:
        env_a.close(), env_b.close()


def test_eval_mode_does_not_end_episodes_on_life_loss():
    env = make_vector_env("Breakout", 1, seed=1, terminal_on_life_loss=True, eval_mode=True)
    try:
        env.reset()
        rng = np.random.default_rng(0)
        lost = 0
        for _ in range(3000):
            _, _, term, trunc, info = env.step(rng.integers(0, 4, size=1))
            lost += int(info["life_lost"][0])
            assert term[0] == info["game_over"][0]
            if info["game_over"][0]:
                break
        assert lost == 4 and info["game_over"][0]
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------
# seeding
# ---------------------------------------------------------------------------------------------


def _rollout(name, seed, steps, n=2, action_seed=0):
    env = make_vector_env(name, n, seed=seed)
    try:
        obs, _ = env.reset()
        out = [obs.copy()]
        rng = np.random.default_rng(action_seed)
        nA = env.single_action_space.n
        for _ in range(steps):
            obs, *_ = env.step(rng.integers(0, nA, size=n))
            out.append(obs.copy())
        return np.stack(out)
    finally:
        env.close()


def test_seeding_cartpole_reproducible():
    a, b, c = _rollout("CartPole", 11, 300), _rollout("CartPole", 11, 300), _rollout("CartPole", 12, 300)
    np.testing.assert_array_equal(a, b)  # includes several autoresets
    assert not np.array_equal(a, c)
    e1, e2 = make_vector_env("CartPole", 2, seed=5), make_vector_env("CartPole", 2, seed=5)
    e1.reset(), e2.reset()
    np.testing.assert_array_equal(e1.action_space.sample(), e2.action_space.sample())
    e1.close(), e2.close()


def test_seeding_pong_reproducible():
    a, b, c = _rollout("Pong", 4, 60), _rollout("Pong", 4, 60), _rollout("Pong", 5, 60)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ---------------------------------------------------------------------------------------------
# layering
# ---------------------------------------------------------------------------------------------


def test_envs_imports_no_agent_or_harness_code():
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys, envs; envs.make_vector_env('CartPole', 1, 0).close(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('agents', 'experiments') "
        "or m.startswith(('rlime.harness', 'rlime.bench'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_rescaled_observations_map_each_feature_from_its_bounds_onto_unit_range():
    spec = resolve_env("MountainCar").configured(rescale_observations=True)
    assert spec.protocol["rescale_observations"] is True
    raw, scaled = make_vector_env("MountainCar", 1, seed=3), make_vector_env(spec, 1, seed=3)
    low, high = np.array([-1.2, -0.07]), np.array([0.6, 0.07])  # MountainCar-v0's bounds
    obs_raw, _ = raw.reset()
    obs_scaled, _ = scaled.reset()
    for _ in range(50):
        expected = 2 * (obs_raw - low) / (high - low) - 1
        np.testing.assert_allclose(obs_scaled, expected, rtol=1e-5, atol=1e-6)
        assert obs_scaled.dtype == np.float32 and np.all(np.abs(obs_scaled) <= 1)
        actions = np.array([2])
        (obs_raw, *_), (obs_scaled, *_) = raw.step(actions), scaled.step(actions)
    assert resolve_env("MountainCar").configured().protocol["rescale_observations"] is False
    with pytest.raises(ValueError, match="finite bounds"):  # CartPole's velocities are unbounded
        make_vector_env(resolve_env("CartPole").configured(rescale_observations=True), 1, 0)
    with pytest.raises(ValueError, match="vector observations"):
        resolve_env("Breakout-MinAtar").configured(rescale_observations=True)
