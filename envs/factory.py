"""EnvSpec -> configured, seeded Gymnasium vector env with one autoreset/info contract.

Both families (ALE Atari through ale-py's native ``AtariVectorEnv``; everything else through
``gymnasium.vector.SyncVectorEnv``) are wrapped in :class:`RlimeVectorEnv`, which gives them the
same step semantics, seeding and game statistics.  See :func:`make_vector_env`.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import gymnasium.vector.utils
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper

from envs.spec import ATARI_PREPROCESSING, EnvSpec, resolve_env

__all__ = ["make_vector_env", "RlimeVectorEnv", "NOOP_ACTION"]

#: Index of NOOP in every ALE action set (minimal and full sets both start with NOOP).
NOOP_ACTION = 0


class RlimeVectorEnv(VectorWrapper):
    """Uniform contract over the Atari and Gymnasium vector envs (see :func:`make_vector_env`).

    Attributes: ``env_spec`` (the :class:`EnvSpec`, protocol configured), ``protocol`` (its dict),
    ``seed`` (the factory seed), ``eval_mode``, ``terminal_on_life_loss``.
    """

    def __init__(
        self,
        env: VectorEnv,
        spec: EnvSpec,
        *,
        seed: int,
        terminal_on_life_loss: bool,
        eval_mode: bool,
    ):
        super().__init__(env)
        self.env_spec = spec
        self.protocol = spec.protocol
        self.seed = int(seed)
        self.eval_mode = bool(eval_mode)
        self.terminal_on_life_loss = bool(terminal_on_life_loss) and spec.is_atari
        self._track_lives = spec.is_atari
        n = self.num_envs
        self._seeded = False
        self._autoreset = np.zeros(n, dtype=bool)   # raw env resets env i on the next step
        self._soft_reset = np.zeros(n, dtype=bool)  # next step of env i is a life-loss NOOP step
        self._lives = np.zeros(n, dtype=np.int64)
        self._game_return = np.zeros(n, dtype=np.float64)
        self._game_length = np.zeros(n, dtype=np.int64)
        self._cast_obs: np.dtype | None = None
        space = env.single_observation_space
        if (
            isinstance(space, gym.spaces.Box)
            and np.issubdtype(space.dtype, np.floating)
            and space.dtype != np.float32
        ):
            self._cast_obs = np.dtype(np.float32)
            self.single_observation_space = gym.spaces.Box(
                low=space.low.astype(np.float32), high=space.high.astype(np.float32), dtype=np.float32
            )
            self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, n)
        self.metadata = dict(env.metadata)
        self.metadata["autoreset_mode"] = AutoresetMode.NEXT_STEP

    # -- helpers -----------------------------------------------------------------------------

    def _obs(self, obs: Any) -> Any:
        return obs.astype(self._cast_obs) if self._cast_obs is not None else obs

    def _lives_of(self, info: dict[str, Any]) -> np.ndarray:
        if self._track_lives and "lives" in info:
            return np.asarray(info["lives"], dtype=np.int64)
        return np.zeros(self.num_envs, dtype=np.int64)

    # -- VectorEnv API -----------------------------------------------------------------------

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset; the first reset without a seed uses the factory seed (env i gets seed + i)."""
        if seed is None and not self._seeded:
            seed = self.seed
        if not self._seeded:
            self.action_space.seed(self.seed)
            self.single_action_space.seed(self.seed)
        self._seeded = True
        obs, info = self.env.reset(seed=seed, options=options)
        mask = np.ones(self.num_envs, dtype=bool)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        self._autoreset[mask] = False
        self._soft_reset[mask] = False
        self._game_return[mask] = 0.0
        self._game_length[mask] = 0
        self._lives[mask] = self._lives_of(info)[mask]
        return self._obs(obs), info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        if self.env_spec.is_atari:
            actions = actions.astype(np.int64, copy=True)
            # After a life-loss termination the "reset" is a NOOP step of the same game
            # (OpenAI-baselines EpisodicLifeEnv): the agent's action is ignored.
            actions[self._soft_reset] = NOOP_ACTION
        obs, reward, terminated, truncated, info = self.env.step(actions)
        reward = np.asarray(reward, dtype=np.float64).copy()
        terminated = np.asarray(terminated, dtype=bool).copy()
        truncated = np.asarray(truncated, dtype=bool).copy()
        info = dict(info)

        reset_step = self._autoreset.copy()   # raw env ignored the action and reset env i
        soft_step = self._soft_reset.copy()   # NOOP continuation after a lost life
        game_over = (terminated | truncated) & ~reset_step

        live = ~reset_step
        self._game_return[live] += reward[live]
        self._game_length[live] += 1

        lives = self._lives_of(info)
        life_lost = (lives < self._lives) & (lives > 0) & ~game_over & ~reset_step
        self._lives = lives

        if self.terminal_on_life_loss:
            terminated |= life_lost
        reward[soft_step] = 0.0  # counted in game_return above, hidden from the learner

        info["game_over"] = game_over
        info["game_return"] = np.where(game_over, self._game_return, 0.0)
        info["game_length"] = np.where(game_over, self._game_length, 0)
        info["life_lost"] = life_lost
        info["autoreset"] = reset_step | soft_step

        self._game_return[game_over] = 0.0
        self._game_length[game_over] = 0
        self._autoreset = game_over.copy()
        self._soft_reset = life_lost & self.terminal_on_life_loss & ~game_over
        return self._obs(obs), reward, terminated, truncated, info


def _atari_vector_env(spec: EnvSpec, num_envs: int, num_threads: int) -> VectorEnv:
    from ale_py.vector_env import AtariVectorEnv

    p = spec.protocol
    size = ATARI_PREPROCESSING["screen_size"]
    return AtariVectorEnv(
        spec.rom,
        num_envs,
        num_threads=num_threads,
        # One frameskip only: the vector env repeats each action `frameskip` emulator frames
        # (the registered ALE/<Game>-v5 frameskip=4 means the same thing; it is not applied twice).
        frameskip=p["frameskip"],
        maxpool=p["maxpool"],
        noop_max=p["noop_max"],
        stack_num=p["frame_stack"],
        img_height=size,
        img_width=size,
        grayscale=p["grayscale"],
        repeat_action_probability=p["repeat_action_probability"],
        full_action_space=p["action_set"] == "full",
        max_num_frames_per_episode=p["max_num_frames_per_episode"],
        use_fire_reset=p["fire_reset"],
        reward_clipping=False,   # raw rewards; the agent clips for learning only
        episodic_life=False,     # life loss is handled by RlimeVectorEnv (ale-py's episodic_life
        life_loss_info=False,    # resets the whole game after a lost life)
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )


def _channels_first(env: gym.Env) -> gym.Env:
    """MinAtar's (10, 10, C) bool planes as (C, 10, 10) uint8 in {0, 1}: the layout of a conv
    layer's input, one byte a cell in the replay memory."""
    h, w, c = env.observation_space.shape
    space = gym.spaces.Box(0, 1, (c, h, w), np.uint8)
    return gym.wrappers.TransformObservation(env, _planes_first, space)


def _planes_first(obs: np.ndarray) -> np.ndarray:
    """(H, W, C) bool -> (C, H, W) uint8 (a module-level function: the env pickles)."""
    return np.ascontiguousarray(obs.transpose(2, 0, 1), dtype=np.uint8)


def _gym_vector_env(spec: EnvSpec, num_envs: int) -> VectorEnv:
    def thunk() -> Callable[[], gym.Env]:
        if spec.family == "minatar":
            return lambda: _channels_first(gym.make(spec.env_id))
        if spec.protocol.get("rescale_observations"):
            return lambda: _rescaled(gym.make(spec.env_id))
        return lambda: gym.make(spec.env_id)

    return SyncVectorEnv([thunk() for _ in range(num_envs)], autoreset_mode=AutoresetMode.NEXT_STEP)


def _rescaled(env: gym.Env) -> gym.Env:
    """Every observation feature mapped affinely from its Box bounds onto [-1, 1]
    (gymnasium's RescaleObservation): features of very different ranges (MountainCar's
    position, +-1.2, and velocity, +-0.07) then share the first layer's per-sample DAC range
    evenly. Needs finite bounds."""
    space = env.observation_space
    if not (isinstance(space, gym.spaces.Box) and np.isfinite(space.low).all()
            and np.isfinite(space.high).all()):
        raise ValueError(f"rescale_observations needs a Box observation space with finite "
                         f"bounds; {env.spec.id if env.spec else env} has {space}")
    return gym.wrappers.RescaleObservation(env, np.float32(-1.0), np.float32(1.0))


def make_vector_env(
    spec_or_name: EnvSpec | str,
    num_envs: int,
    seed: int,
    *,
    terminal_on_life_loss: bool = False,
    eval_mode: bool = False,
    num_threads: int = 0,
) -> RlimeVectorEnv:
    """Build ``num_envs`` copies of an environment under the rlime protocol.

    Args:
        spec_or_name: an :class:`EnvSpec` or anything :func:`resolve_env` accepts.
        num_envs: number of sub-environments (>= 1).
        seed: run seed. The first ``reset()`` without an explicit seed seeds sub-env i with
            ``seed + i`` (both families), and the action spaces are seeded with ``seed``, so the
            same seed and the same actions give the same observations.
        terminal_on_life_loss: Atari only: a lost life returns ``terminated=True`` for learning
            (the game itself goes on). No effect for envs without lives.
        eval_mode: evaluation episodes: forces ``terminal_on_life_loss=False``; everything else
            (sticky actions, frameskip, noops, caps) is the training protocol.
        num_threads: Atari only: worker threads of ale-py's vector env (0 = its default).

    Returns:
        A :class:`RlimeVectorEnv` (a ``gymnasium.vector.VectorEnv``) with ``env.protocol`` (the
        dict to record with results) and ``env.env_spec``.

    Observations: Atari ``(num_envs, 4, 84, 84)`` uint8 (4 grayscale frames, oldest first;
    after a reset the older frames are zeros); MinAtar ``(num_envs, C, 10, 10)`` uint8 in
    {0, 1}; other envs as registered, floating Box cast to float32. Rewards: float64, the raw game reward (never clipped here).

    Autoreset (Gymnasium NEXT_STEP, identical for both families): after a step that returns
    ``terminated[i] or truncated[i]``, the next ``step()`` ignores ``actions[i]`` and returns,
    for env i, the first observation of the next episode with ``reward 0``,
    ``terminated False``, ``truncated False``. Do not store that step as a transition (it is
    flagged ``info["autoreset"][i]``). With ``terminal_on_life_loss`` a lost life is such a
    termination too: the next step sends NOOP instead of ``actions[i]`` (the game continues,
    it is not reset), reports reward 0 (whatever the NOOP frames scored still counts in the game
    score) and is flagged the same way.

    ``info`` of every step holds (all arrays of shape ``(num_envs,)``), besides the underlying
    env's keys (Atari: ``lives``, ``frame_number``, ``episode_frame_number``, ``env_id``):

    * ``game_over`` (bool): the real episode (the whole game) ended on this step, by game over
      or by the episode cap; ``terminated | truncated`` whenever no life-loss termination is
      involved (always, for non-Atari envs).
    * ``game_return`` (float64) / ``game_length`` (int64): raw score and agent steps of the game
      that ended, where ``game_over``; 0 elsewhere. Log these as the episode's return/length.
    * ``life_lost`` (bool): a life was lost on this step and the game goes on (Atari).
    * ``autoreset`` (bool): this step ignored ``actions[i]`` (reset or life-loss NOOP step).
    """
    spec = spec_or_name if isinstance(spec_or_name, EnvSpec) else resolve_env(spec_or_name)
    if int(num_envs) < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
    life_loss = bool(terminal_on_life_loss) and not eval_mode
    spec = spec.configured(terminal_on_life_loss=life_loss, rescale_observations=bool(
        spec.protocol.get("rescale_observations")))
    if spec.is_atari:
        env = _atari_vector_env(spec, int(num_envs), int(num_threads))
    else:
        env = _gym_vector_env(spec, int(num_envs))
    return RlimeVectorEnv(
        env, spec, seed=int(seed), terminal_on_life_loss=life_loss, eval_mode=eval_mode
    )
