"""Tests for agents.replay.ReplayBuffer (frame-deduplicated DQN replay for vector envs)."""

from __future__ import annotations

import pickle
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import FrameStackObservation

from agents.replay import ReplayBuffer

FRAME = (84, 84)
STACK = 4


# --------------------------------------------------------------------------- synthetic Atari-like env
class FrameEnv(gym.Env):
    """84x84 uint8 frames of seeded noise with a header: [1, env_id, episode, t] in row 0.

    Episode lengths and end kinds (terminated / truncated) are drawn per env, so parallel envs end
    their episodes at different times; length-1 episodes occur.
    """

    metadata: dict = {"render_modes": []}

    def __init__(self, env_id: int, seed: int, max_len: int = 12):
        self.observation_space = gym.spaces.Box(0, 255, FRAME, np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.env_id = env_id
        self.max_len = max_len
        self._rng = np.random.default_rng(1000 + seed * 7 + env_id)
        self.episode = -1
        self.t = 0
        self.length = 1
        self.terminate = True

    def _frame(self) -> np.ndarray:
        f = self._rng.integers(0, 256, size=FRAME, dtype=np.uint8)
        f[0, :4] = (1, self.env_id, self.episode % 256, self.t % 256)
        return f

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        self.length = int(self._rng.integers(1, self.max_len + 1))
        self.terminate = bool(self._rng.integers(0, 2))
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        reward = float(self.env_id * 1000 + self.episode * 10 + self.t % 10) + 0.25 * int(action)
        done = self.t >= self.length
        return self._frame(), reward, done and self.terminate, done and not self.terminate, {}


def make_vec(num_envs: int, seed: int = 0, padding: str = "reset", max_len: int = 12) -> SyncVectorEnv:
    def thunk(i):
        return lambda: FrameStackObservation(FrameEnv(i, seed, max_len), STACK, padding_type=padding)

    return SyncVectorEnv([thunk(i) for i in range(num_envs)], autoreset_mode=AutoresetMode.NEXT_STEP)


def drive(venv, buf: ReplayBuffer, steps: int, seed: int = 0):
    """Run a NEXT_STEP-autoreset vector env as the trainer would; return per-env reference lists.

    refs[e][t] = (obs, action, reward, next_obs, terminated, truncated) of env e's t-th added transition.
    """
    rng = np.random.default_rng(seed)
    E = venv.num_envs
    refs: list[list[tuple]] = [[] for _ in range(E)]
    obs, _ = venv.reset(seed=seed)
    obs = np.array(obs)
    prev_done = np.zeros(E, dtype=bool)
    for _ in range(steps):
        a = rng.integers(0, 4, size=E)
        nxt, r, term, trunc, _ = venv.step(a)
        nxt = np.array(nxt)
        valid = ~prev_done  # the step after a done is a reset step: not a transition
        buf.add(obs, a, r, nxt, term, trunc, valid=valid)
        for e in np.flatnonzero(valid):
            refs[e].append((obs[e].copy(), int(a[e]), np.float32(r[e]), nxt[e].copy(), bool(term[e]), bool(trunc[e])))
        prev_done = term | trunc
        obs = nxt
    return refs


def check_all_valid_transitions(buf: ReplayBuffer, refs) -> int:
    """Every sampleable transition is reassembled bit-identical to what the env produced."""
    n = 0
    for e in range(buf.num_envs):
        lo, hi = int(buf._lo[e]), int(buf._t_count[e])
        assert hi == len(refs[e])
        assert hi - lo <= buf.per_env_capacity
        if hi == lo:
            continue
        t = np.arange(lo, hi)
        got = buf.get_numpy(np.full(t.shape, e), t)
        for i, tt in enumerate(t):
            o, a, r, no, term, trunc = refs[e][tt]
            np.testing.assert_array_equal(got["obs"][i], o)
            np.testing.assert_array_equal(got["next_obs"][i], no)
            assert got["actions"][i] == a
            assert got["rewards"][i] == r
            assert got["dones"][i] == (1.0 if term else 0.0)
            n += 1
    assert n == len(buf)
    return n


def assert_no_cross_episode(obs: np.ndarray, next_obs: np.ndarray) -> None:
    """Header check: every non-padding frame of a stack belongs to the newest frame's (env, episode);
    next_obs's newest frame is the step after obs's newest frame."""
    for o, no in zip(obs, next_obs):
        for stack in (o, no):
            env, ep = stack[-1, 0, 1], stack[-1, 0, 2]
            for f in stack:
                if not f.any():  # zero padding
                    continue
                assert f[0, 0] == 1 and f[0, 1] == env and f[0, 2] == ep
            ts = [int(f[0, 3]) for f in stack if f.any()]
            assert ts == sorted(ts)
        assert no[-1, 0, 1] == o[-1, 0, 1] and no[-1, 0, 2] == o[-1, 0, 2]
        assert int(no[-1, 0, 3]) == int(o[-1, 0, 3]) + 1


# --------------------------------------------------------------------------- sizes
def test_bytes_per_transition_atari_and_cartpole():
    atari = ReplayBuffer(4000, (4, 84, 84), np.uint8, num_envs=4, frame_stack=4)
    frame = 84 * 84
    assert frame <= atari.bytes_per_transition < 7.5e3
    assert atari.nbytes == ReplayBuffer.estimate_bytes(4000, (4, 84, 84), np.uint8, 4, 4)
    assert atari.bytes_per_transition == atari.nbytes / atari.capacity
    # 1M Atari transitions: computed, not allocated
    assert ReplayBuffer.estimate_bytes(1_000_000, (4, 84, 84), np.uint8, 4, 8) <= 7.5e9
    assert ReplayBuffer.estimate_bytes(1_000_000, (4, 84, 84), np.uint8, 4, 1) <= 7.5e9

    cart = ReplayBuffer(10_000, (4,), np.float32, num_envs=4)
    assert cart.nbytes == ReplayBuffer.estimate_bytes(10_000, (4,), np.float32, 1, 4)
    # each obs stored once in a 2x worst-case frame ring (32 B) + action/reward/done/index (21 B)
    assert cart.bytes_per_transition < 60


@pytest.mark.parametrize(
    "capacity,shape,dtype,stack,envs,slack",
    [
        (1000, (4, 84, 84), np.uint8, 4, 1, None),
        (1003, (4, 84, 84), np.uint8, 4, 3, None),  # not divisible by num_envs
        (500, (4,), np.float32, 1, 8, None),
        (777, (2, 3, 5), np.float64, 2, 2, 0.5),
        (64, (128,), np.uint8, 1, 1, 0.0),
    ],
)
def test_estimate_bytes_matches_nbytes(capacity, shape, dtype, stack, envs, slack):
    est = ReplayBuffer.estimate_bytes(capacity, shape, dtype, stack, envs, frame_slack=slack)
    buf = ReplayBuffer(capacity, shape, dtype, envs, frame_stack=stack, frame_slack=slack)
    assert est == buf.nbytes
    assert buf.capacity == (capacity // envs) * envs


def test_construction_is_lazy():
    t0 = time.perf_counter()
    buf = ReplayBuffer(100_000, (4, 84, 84), np.uint8, num_envs=8, frame_stack=4)
    assert time.perf_counter() - t0 < 2.0
    assert buf.nbytes > 100_000 * 84 * 84 and len(buf) == 0
    with pytest.raises(ValueError):
        buf.sample(4)


# --------------------------------------------------------------------------- frame stacking
@pytest.mark.parametrize("num_envs,padding", [(1, "reset"), (3, "reset"), (2, "zero")])
def test_stacks_bit_identical_vector_env(num_envs, padding):
    venv = make_vec(num_envs, seed=num_envs, padding=padding)
    buf = ReplayBuffer(600 * num_envs, (4, 84, 84), np.uint8, num_envs, frame_stack=4, seed=1)
    refs = drive(venv, buf, steps=150, seed=num_envs)
    # nothing overwritten yet: every added transition is present and exact
    assert len(buf) == sum(len(r) for r in refs)
    assert buf.num_discontinuities == 0
    # episodes end at different times across envs, including right after episode starts
    firsts = [tr for r in refs for tr in r if tr[0][-1, 0, 3] == 0]
    assert len(firsts) > 10 * num_envs
    check_all_valid_transitions(buf, refs)
    # sample() path: look up each sampled obs among the env's obs (unique noise frames)
    index = {tr[0].tobytes(): tr for r in refs for tr in r}
    batch = buf.sample(256)
    assert batch["obs"].dtype == torch.uint8 and batch["obs"].shape == (256, 4, 84, 84)
    obs, next_obs = batch["obs"].numpy(), batch["next_obs"].numpy()
    for i in range(256):
        o, a, r, no, term, _ = index[obs[i].tobytes()]
        np.testing.assert_array_equal(next_obs[i], no)
        assert batch["actions"][i].item() == a and batch["rewards"][i].item() == r
        assert batch["dones"][i].item() == float(term)
    assert_no_cross_episode(obs, next_obs)
    venv.close()


def test_episode_start_stack_reproduced_exactly():
    """Right after reset the env's stack is padding + reset frame; the buffer must return exactly it."""
    for padding in ("reset", "zero"):
        venv = make_vec(2, seed=5, padding=padding)
        buf = ReplayBuffer(400, (4, 84, 84), np.uint8, 2, frame_stack=4)
        refs = drive(venv, buf, steps=60, seed=5)
        checked = 0
        for e in range(2):
            for t, tr in enumerate(refs[e]):
                if tr[0][-1, 0, 3] != 0:  # only first transitions of episodes
                    continue
                got = buf.get_numpy(np.array([e]), np.array([t]))
                if padding == "reset":
                    assert all(np.array_equal(f, tr[0][-1]) for f in tr[0])
                else:
                    assert not tr[0][:3].any()
                np.testing.assert_array_equal(got["obs"][0], tr[0])
                np.testing.assert_array_equal(got["next_obs"][0], tr[3])
                checked += 1
        assert checked > 5
        venv.close()


def test_ring_wraparound_keeps_only_valid_transitions():
    # tiny per-env rings with short episodes: frames are overwritten before transitions expire
    venv = make_vec(3, seed=7, max_len=6)
    buf = ReplayBuffer(30, (4, 84, 84), np.uint8, 3, frame_stack=4, seed=3)
    assert buf.per_env_capacity == 10 and buf.frames_per_env < 10 * 5
    refs = drive(venv, buf, steps=400, seed=7)
    # frame overwrites (not just the transition ring) limit what is valid here
    assert 0 < len(buf) < buf.capacity
    check_all_valid_transitions(buf, refs)
    for e in range(3):  # only the most recent transitions survive
        assert buf._lo[e] >= buf._t_count[e] - buf.per_env_capacity
    for _ in range(5):
        b = buf.sample(64)
        assert_no_cross_episode(b["obs"].numpy(), b["next_obs"].numpy())
    venv.close()


def test_len_full_capacity_with_long_episodes():
    # episodes longer than the frame slack covers: the buffer holds exactly `capacity` once full
    buf = ReplayBuffer(20, (4, 84, 84), np.uint8, 1, frame_stack=4)  # 20 + 1 + 5 = 26 frames
    assert buf.frames_per_env == 26
    rng = np.random.default_rng(0)
    stack = np.repeat(rng.integers(0, 256, (1, 1, 84, 84), dtype=np.uint8), 4, axis=1)
    for step in range(100):  # one endless episode
        f = rng.integers(0, 256, (1, 1, 84, 84), dtype=np.uint8)
        nxt = np.concatenate([stack[:, 1:], f], axis=1)
        buf.add(stack, [0], [0.0], nxt, [False], [False])
        stack = nxt
        assert len(buf) == min(step + 1, 20)
    b = buf.get_numpy(np.zeros(20, dtype=np.int64), np.arange(80, 100))
    np.testing.assert_array_equal(b["obs"][1:], b["next_obs"][:-1])
    np.testing.assert_array_equal(b["next_obs"][-1], stack[0])


# --------------------------------------------------------------------------- dones, masks, checks
def test_terminated_vs_truncated_dones():
    buf = ReplayBuffer(100, (3,), np.float32, 2)
    o = np.zeros((2, 3), np.float32)
    n1 = np.ones((2, 3), np.float32)
    buf.add(o, [1, 2], [0.5, -0.5], n1, terminated=[True, False], truncated=[False, True])
    n2 = np.full((2, 3), 2.0, np.float32)
    n3 = np.full((2, 3), 3.0, np.float32)
    # both envs start new episodes (obs 2.0 is a reset obs, not the stored 1.0)
    buf.add(n2, [3, 0], [1.0, 1.0], n3, terminated=[False, False], truncated=[False, False])
    assert buf.num_discontinuities == 0
    got = buf.get_numpy(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    np.testing.assert_array_equal(got["dones"], [1.0, 0.0, 0.0, 0.0])  # truncated bootstraps
    np.testing.assert_array_equal(got["actions"], [1, 2, 3, 0])
    np.testing.assert_array_equal(got["rewards"], np.array([0.5, -0.5, 1.0, 1.0], np.float32))
    np.testing.assert_array_equal(got["obs"], [o[0], o[1], n2[0], n2[1]])
    np.testing.assert_array_equal(got["next_obs"], [n1[0], n1[1], n3[0], n3[1]])
    b = buf.sample(8)
    assert b["dones"].dtype == torch.float32 and b["actions"].dtype == torch.int64
    assert b["rewards"].dtype == torch.float32 and b["obs"].dtype == torch.float32
    assert set(b) == {"obs", "actions", "rewards", "next_obs", "dones"}


def test_valid_mask_skips_envs():
    buf = ReplayBuffer(60, (2,), np.float32, 3)
    o = np.arange(6, dtype=np.float32).reshape(3, 2)
    buf.add(o, [0, 1, 2], [0, 0, 0], o + 10, [False] * 3, [False] * 3, valid=[True, False, True])
    assert len(buf) == 2 and list(buf._t_count) == [1, 0, 1]
    buf.add(o + 10, [0, 1, 2], [0, 0, 0], o + 20, [False] * 3, [False] * 3, valid=np.zeros(3, bool))
    assert len(buf) == 2
    buf.add(o + 10, [0, 1, 2], [0, 0, 0], o + 20, [False] * 3, [False] * 3)
    assert len(buf) == 5
    got = buf.get_numpy(np.array([0, 1, 2]), np.array([1, 0, 1]))
    np.testing.assert_array_equal(got["obs"], o + 10)
    np.testing.assert_array_equal(got["next_obs"], o + 20)
    # env 0 continued its episode (obs stored once); env 1's first transition started an episode
    assert buf._f_count[0] == 3 and buf._f_count[1] == 2
    for _ in range(20):
        e, _t = buf.sample_indices(16)
        assert ((e >= 0) & (e < 3)).all()


def test_skipped_step_mid_episode_is_handled():
    """A transition dropped mid-episode breaks continuity: detected, the stack is stored anew."""
    buf = ReplayBuffer(50, (4, 84, 84), np.uint8, 1, frame_stack=4)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (10, 84, 84), dtype=np.uint8)
    stacks = [frames[i : i + 4][None] for i in range(6)]
    buf.add(stacks[0], [0], [0], stacks[1], [False], [False])
    buf.add(stacks[2], [0], [0], stacks[3], [False], [False])  # stacks[1] -> stacks[2] not added
    assert buf.num_discontinuities == 1
    got = buf.get_numpy(np.array([0, 0]), np.array([0, 1]))
    np.testing.assert_array_equal(got["obs"][1], stacks[2][0])
    np.testing.assert_array_equal(got["next_obs"][1], stacks[3][0])


def test_validate_rejects_transition_across_autoreset():
    buf = ReplayBuffer(50, (4, 84, 84), np.uint8, 2, frame_stack=4)
    rng = np.random.default_rng(2)
    obs = rng.integers(0, 256, (2, 4, 84, 84), dtype=np.uint8)
    nxt = np.concatenate([obs[:, 1:], rng.integers(0, 256, (2, 1, 84, 84), dtype=np.uint8)], axis=1)
    reset = np.repeat(rng.integers(0, 256, (1, 1, 84, 84), dtype=np.uint8), 4, axis=1)
    bad = nxt.copy()
    bad[1] = reset[0]
    with pytest.raises(ValueError, match="autoreset"):
        buf.add(obs, [0, 0], [0, 0], bad, [False, False], [False, False])
    # masking the bad env makes it fine
    buf.add(obs, [0, 0], [0, 0], bad, [False, False], [False, False], valid=[True, False])
    assert len(buf) == 1


# --------------------------------------------------------------------------- sampling
def test_sampling_uniform_over_valid_transitions():
    buf = ReplayBuffer(30, (1,), np.float32, 3, seed=4)  # per env 10
    # env 0: 10 (wrapped from 25), env 1: 3, env 2: 7 -> 20 valid transitions
    for e, n in ((0, 25), (1, 3), (2, 7)):
        for i in range(n):
            mask = np.arange(3) == e
            v = np.full((3, 1), i, np.float32)
            buf.add(v, [0] * 3, [0] * 3, v + 1, [False] * 3, [False] * 3, valid=mask)
    assert len(buf) == 20
    env, t = buf.sample_indices(100_000)
    keys = env * 1000 + t
    uniq, counts = np.unique(keys, return_counts=True)
    expected_keys = sorted([0 * 1000 + t for t in range(15, 25)] + [1000 + t for t in range(3)] + [2000 + t for t in range(7)])
    assert uniq.tolist() == expected_keys
    exp = 100_000 / 20
    assert np.abs(counts - exp).max() < 5 * np.sqrt(exp)


def test_sampling_reproducible_and_state_dict_roundtrip():
    venv = make_vec(3, seed=11, max_len=8)
    buf = ReplayBuffer(60, (4, 84, 84), np.uint8, 3, frame_stack=4, seed=42)
    drive(venv, buf, steps=80, seed=11)  # wrapped
    buf.sample(16)  # advance the rng so its state is not the seed's
    sd = pickle.loads(pickle.dumps(buf.state_dict()))
    saved_bytes = sum(v.nbytes for v in sd.values() if isinstance(v, np.ndarray)) + sum(
        t.untyped_storage().nbytes() for v in sd.values() if isinstance(v, list) for t in v)
    assert saved_bytes <= buf.nbytes

    clone = ReplayBuffer(60, (4, 84, 84), np.uint8, 3, frame_stack=4, seed=0)
    clone.load_state_dict(sd)
    assert len(clone) == len(buf)
    for _ in range(3):
        a, b = buf.sample(32), clone.sample(32)
        for k in a:
            assert torch.equal(a[k], b[k]), k

    # continuing to add identical data keeps them identical
    rng = np.random.default_rng(3)
    obs = np.array([venv.envs[e].unwrapped._frame() for e in range(3)])[:, None].repeat(4, axis=1)
    for _ in range(5):
        nxt = np.concatenate([obs[:, 1:], rng.integers(0, 256, (3, 1, 84, 84), dtype=np.uint8)], axis=1)
        for x in (buf, clone):
            x.add(obs, [1, 2, 3], [1.0, 2.0, 3.0], nxt, [False] * 3, [False] * 3)
        obs = nxt
    a, b = buf.sample(32), clone.sample(32)
    for k in a:
        assert torch.equal(a[k], b[k]), k

    # layout mismatch is rejected
    with pytest.raises(ValueError):
        ReplayBuffer(90, (4, 84, 84), np.uint8, 3, frame_stack=4).load_state_dict(sd)
    venv.close()


def test_state_dict_small_when_partly_filled():
    buf = ReplayBuffer(10_000, (4, 84, 84), np.uint8, 2, frame_stack=4)
    venv = make_vec(2, seed=2)
    drive(venv, buf, steps=20, seed=2)
    sd = buf.state_dict()
    assert len(sd["frames"]) == 2 and sd["frames"][0].shape[0] <= 20 + 4 * 20
    assert sd["obs_frame"][0].shape[0] <= 20
    # each ring is saved as per-env tensors over the live buffer: no copy, and a storage of
    # exactly the filled slots (torch.save writes whole storages)
    frames = sd["frames"][1]
    assert frames.data_ptr() == buf._frames[1].ctypes.data
    assert frames.untyped_storage().nbytes() == frames.shape[0] * 84 * 84  # uint8 frames
    venv.close()


def test_older_checkpoints_with_ring_arrays_still_load():
    venv = make_vec(2, seed=2)
    buf = ReplayBuffer(200, (4, 84, 84), np.uint8, 2, frame_stack=4, seed=1)
    drive(venv, buf, steps=30, seed=2)
    sd = buf.state_dict()
    rings = ("frames", "obs_frame", "actions", "rewards", "terminated")
    old = {**sd, **{name: np.stack([t.numpy() for t in sd[name]]) for name in rings}}
    clone = ReplayBuffer(200, (4, 84, 84), np.uint8, 2, frame_stack=4, seed=0)
    clone.load_state_dict(old)
    a, b = buf.sample(16), clone.sample(16)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    venv.close()


def test_cartpole_vector_obs():
    E = 3
    venv = gym.make_vec("CartPole-v1", num_envs=E, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP})
    buf = ReplayBuffer(150, (4,), np.float32, E, seed=0)
    rng = np.random.default_rng(0)
    refs: list[list[tuple]] = [[] for _ in range(E)]
    obs, _ = venv.reset(seed=0)
    prev_done = np.zeros(E, bool)
    for _ in range(600):
        a = rng.integers(0, 2, size=E)
        nxt, r, term, trunc, _ = venv.step(a)
        valid = ~prev_done
        buf.add(obs, a, r, nxt, term, trunc, valid=valid)
        for e in np.flatnonzero(valid):
            refs[e].append((obs[e].copy(), int(a[e]), np.float32(r[e]), nxt[e].copy(), bool(term[e]), bool(trunc[e])))
        prev_done = term | trunc
        obs = nxt.copy()
    venv.close()
    # small frames: the ring is sized for the worst case, so exactly `capacity` are kept
    assert len(buf) == buf.capacity == 150
    assert buf.num_discontinuities == 0
    check_all_valid_transitions(buf, refs)
    b = buf.sample(32)
    assert b["obs"].shape == (32, 4) and b["obs"].dtype == torch.float32
    # random policy: terminal transitions are present and flagged as dones
    n_term = sum(tr[4] for e in range(E) for tr in refs[e][int(buf._lo[e]):])
    assert n_term > 0
    env, t = np.divmod(np.arange(buf.capacity), buf.per_env_capacity)
    got = buf.get_numpy(env, buf._lo[env] + t)
    assert got["dones"].sum() == n_term


def test_same_seed_same_data_same_samples():
    bufs = []
    for _ in range(2):
        venv = make_vec(2, seed=13, max_len=5)
        buf = ReplayBuffer(40, (4, 84, 84), np.uint8, 2, frame_stack=4, seed=9)
        drive(venv, buf, steps=50, seed=13)
        venv.close()
        bufs.append(buf)
    for _ in range(3):
        a, b = bufs[0].sample(16), bufs[1].sample(16)
        for k in a:
            assert torch.equal(a[k], b[k]), k
    other = ReplayBuffer(40, (4, 84, 84), np.uint8, 2, frame_stack=4, seed=10)
    other.load_state_dict({**bufs[0].state_dict(), "rng_state": other.state_dict()["rng_state"]})
    assert not np.array_equal(other.sample_indices(64)[1], bufs[0].sample_indices(64)[1])
