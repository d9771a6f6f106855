"""Environment names -> :class:`EnvSpec` (env id, family, and the benchmark protocol).

One concept lives here: *which* environment a name means and *under which protocol* it is run.
Building the environment is :mod:`envs.factory`'s job.

Accepted names
--------------
* Short names, case-insensitive: ``CartPole``, ``Acrobot``, ``MountainCar`` (-> ``CartPole-v1``,
  ``Acrobot-v1``, ``MountainCar-v0``) and every ALE game (``Pong``, ``Breakout``, ``SpaceInvaders``,
  ... -> ``ALE/<Game>-v5``).  Underscores, hyphens and spaces are ignored, so the ALE ROM ids
  (``space_invaders``, ``ms_pacman``) work too.  The list comes from the Gymnasium registry after
  ``gym.register_envs(ale_py)``; nothing is hard-coded except the three classic-control aliases.
* MinAtar games (Young & Tian 2019; the ``minatar`` package): ``Breakout-MinAtar``,
  ``SpaceInvaders-MinAtar``, ``Asterix-MinAtar``, ``Freeway-MinAtar``, ``Seaquest-MinAtar``
  (-> ``MinAtar/<Game>-v1``), also without the hyphen or in any case.
* Registered Gymnasium ids: ``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ``CartPole-v1``, ``Acrobot-v1``,
  ... (exact, or differing only in case).  ``Pong-v5`` is accepted as ``ALE/Pong-v5``.

Atari protocol
--------------
Every Atari id is run through the standard DQN preprocessing (ale-py's native vector env): no-op
reset (up to 30 frames), action repeat 4 with a max over the last two frames, 84x84 grayscale,
4-frame stack, raw (unclipped) rewards from the env.  Sticky actions, action set and episode cap
come from the registered id: ``ALE/<Game>-v5`` -> sticky 0.25 (Machado et al. 2018),
``<Game>NoFrameskip-v4`` -> sticky 0.0 (the classic deterministic protocol of CleanRL / SB3).
Ids with a stochastic frameskip (``Pong-v4``, ``Pong-v0``) cannot be given that preprocessing
and are refused with a message that names the alternatives.

MinAtar protocol
----------------
The package's own dynamics, as its paper ran them (Young & Tian 2019, arXiv:1903.03176):
sticky actions 0.1, difficulty ramping on, no frame skip or stack, no episode cap beyond each
game's own (Freeway ends after 2500 frames), raw rewards (never clipped: they are +1 per event).
``-v1`` ids use each game's minimal action set (the paper's agents saw all 6 actions: the
``-v0`` ids). Observations are the 10x10xC binary object planes, given channels-first as
``(C, 10, 10)`` uint8 in {0, 1}.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

__all__ = ["EnvSpec", "resolve_env", "known_env_names", "ATARI_PREPROCESSING"]

#: The classic-control short names (the only hard-coded aliases).
CLASSIC_ALIASES: dict[str, str] = {
    "CartPole": "CartPole-v1",
    "Acrobot": "Acrobot-v1",
    "MountainCar": "MountainCar-v0",
}

#: DQN preprocessing applied to every Atari game (Mnih et al. 2015; Machado et al. 2018).
ATARI_PREPROCESSING: dict[str, Any] = {
    "frameskip": 4,          # agent steps every 4th emulator frame (action repeated 4 times)
    "maxpool": True,         # observation = max over the last two of those frames
    "noop_max": 30,          # random 0..30 no-op frames after every reset
    "frame_stack": 4,
    "screen_size": 84,       # 84 x 84
    "grayscale": True,
    "fire_reset": False,     # no FIRE-on-reset hack (Machado et al.: no game-specific knowledge)
}

#: Reward clipping the agent applies *for learning only*; the env returns raw rewards.
ATARI_REWARD_CLIPPING = "clip[-1,1]"

_ATARI_ENTRY_POINT = "ale_py.env:AtariEnv"
_MINATAR_ENTRY_POINT = "minatar.gym:BaseEnv"
_MINATAR_SUFFIX = "-MinAtar"
#: MinAtar's environment settings (minatar.Environment defaults, the paper's protocol).
MINATAR_PROTOCOL: dict[str, Any] = {"repeat_action_probability": 0.1, "difficulty_ramping": True}
_CLASSIC_ENTRY_PREFIX = "gymnasium.envs.classic_control"
_NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class EnvSpec:
    """What a name resolved to, and the protocol every result on it must record.

    Attributes:
        name: short display name (``"Pong"``, ``"CartPole"``; for other ids the id itself).
        env_id: the registered Gymnasium id (``"ALE/Pong-v5"``, ``"CartPole-v1"``).
        family: ``"atari"`` (ALE, pixel pipeline), ``"minatar"`` (MinAtar games),
            ``"classic"`` (Gymnasium classic control) or ``"gym"`` (any other registered id,
            run as-is).
        observation_kind: ``"pixels"`` (uint8 frames; use a CNN), ``"planes"`` (MinAtar's
            binary object planes, (C, 10, 10); use the MinAtar CNN), ``"vector"`` (1-D float
            features; use an MLP) or ``"other"`` (e.g. a Discrete observation).
        protocol: flat dict of JSON- and TOML-serialisable values (str, int, float, bool; never
            None) to record with every result; see :func:`resolve_env` for the keys.
        rom: ALE ROM id for Atari games (``"pong"``), ``""`` otherwise.
    """

    name: str
    env_id: str
    family: str
    observation_kind: str
    protocol: dict[str, Any] = field(hash=False, repr=False)
    rom: str = ""

    @property
    def is_atari(self) -> bool:
        return self.family == "atari"

    @property
    def reward_clip(self) -> tuple[float, float] | None:
        """Clipping range the agent should apply to rewards for learning (None: no clipping)."""
        return (-1.0, 1.0) if self.is_atari else None

    def defaults_key(self, keys) -> str:
        """The entry of a per-env table (keys: its entries) that holds this env's defaults:
        its id, else its family ("atari", "minatar"), else "default"."""
        if self.env_id in keys:
            return self.env_id
        return self.family if self.family in keys else "default"

    def configured(self, *, terminal_on_life_loss: bool = False,
                   rescale_observations: bool = False) -> "EnvSpec":
        """A copy whose protocol records the given life-loss and observation settings.

        Life loss only exists in Atari games; for the other families the flag has no effect and
        the protocol keeps ``terminal_on_life_loss = False``. ``rescale_observations`` maps
        every feature of a bounded Box observation affinely from its bounds onto [-1, 1]
        (``make_vector_env``); frames and planes (Atari, MinAtar) are codes already, so it is
        refused for them.
        """
        if rescale_observations and self.family in ("atari", "minatar"):
            raise ValueError(f"rescale_observations applies to vector observations; "
                             f"{self.env_id} ({self.family}) has frames or planes")
        protocol = dict(self.protocol)
        protocol["terminal_on_life_loss"] = bool(terminal_on_life_loss) and self.is_atari
        protocol["rescale_observations"] = bool(rescale_observations)
        return dataclasses.replace(self, protocol=protocol)


# ----------------------------------------------------------------------------------------------
# registry views
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _register_ale() -> bool:
    try:
        import ale_py
    except ImportError:  # pragma: no cover - ale-py is a hard dependency; stay usable without it
        return False
    gym.register_envs(ale_py)
    return True


@functools.lru_cache(maxsize=1)
def _register_minatar() -> bool:
    """Register the MinAtar/<Game>-v0/v1 ids (the package does it on request only)."""
    import logging

    logging.disable(logging.WARNING)  # on import it warns that seaborn (rendering) is absent
    try:
        import minatar.gym
    except ImportError:  # pragma: no cover - minatar is a dependency; stay usable without it
        return False
    finally:
        logging.disable(logging.NOTSET)
    if "MinAtar/Breakout-v1" not in gym.registry:
        minatar.gym.register_envs()
    return True


def _register_all() -> None:
    _register_ale()
    _register_minatar()


def _norm(name: str) -> str:
    """Key for case-, underscore-, hyphen- and space-insensitive short-name lookup."""
    return re.sub(r"[\s_\-]", "", name).lower()


@functools.lru_cache(maxsize=1)
def _short_names() -> dict[str, tuple[str, str]]:
    """normalised short name -> (display name, env id)."""
    _register_all()
    table: dict[str, tuple[str, str]] = {}
    for env_id in gym.registry:
        m = re.fullmatch(r"ALE/([A-Za-z0-9]+)-v5", env_id)
        if m and gym.registry[env_id].entry_point == _ATARI_ENTRY_POINT:
            table[_norm(m.group(1))] = (m.group(1), env_id)
        m = re.fullmatch(r"MinAtar/([A-Za-z0-9]+)-v1", env_id)
        if m and gym.registry[env_id].entry_point == _MINATAR_ENTRY_POINT:
            display = m.group(1) + _MINATAR_SUFFIX
            table[_norm(display)] = (display, env_id)
    for short, env_id in CLASSIC_ALIASES.items():
        table[_norm(short)] = (short, env_id)
    return table


def known_env_names(*, include_ids: bool = False) -> list[str]:
    """Sorted short names (``CartPole``, ``Pong``, ...); with ``include_ids`` also every registered id."""
    names = sorted(display for display, _ in _short_names().values())
    if include_ids:
        _register_all()
        names += sorted(gym.registry)
    return names


# ----------------------------------------------------------------------------------------------
# resolution
# ----------------------------------------------------------------------------------------------


def _lookup_id(name: str) -> str | None:
    _register_all()
    if name in gym.registry:
        return name
    lowered = {k.lower(): k for k in gym.registry}
    if name.lower() in lowered:
        return lowered[name.lower()]
    # Common slip: "Pong-v5" for "ALE/Pong-v5".
    if not name.lower().startswith("ale/") and ("ale/" + name).lower() in lowered:
        return lowered[("ale/" + name).lower()]
    return None


def _runnable_id(env_id: str) -> bool:
    """False for ids resolve_env would refuse anyway (stochastic-frameskip Atari ids)."""
    reg = gym.registry[env_id]
    return reg.entry_point != _ATARI_ENTRY_POINT or isinstance(reg.kwargs.get("frameskip", 4), int)


def _unknown(name: str) -> ValueError:
    shorts = known_env_names()
    # Candidates, by their lower-case / normalised key: short names first, then runnable ids.
    keyed: dict[str, str] = {}
    for s in shorts:
        keyed.setdefault(s.lower(), s)
        keyed.setdefault(_norm(s), s)
    for env_id in gym.registry:
        if _runnable_id(env_id):
            keyed.setdefault(env_id.lower(), env_id)
    suggestions: list[str] = []
    for query in (name.lower(), _norm(name)):
        for c in difflib.get_close_matches(query, list(keyed), n=5, cutoff=0.6):
            if keyed[c] not in suggestions:
                suggestions.append(keyed[c])
    hint = f" Did you mean {', '.join(repr(s) for s in suggestions[:5])}?" if suggestions else ""
    return ValueError(
        f"Unknown environment {name!r}.{hint} Allowed are short names (case-insensitive: "
        f"CartPole, Acrobot, MountainCar, Pong, Breakout, SpaceInvaders, ... every ALE game; "
        f"Breakout-MinAtar, SpaceInvaders-MinAtar, ... the MinAtar games; "
        f"{len(shorts)} in all, see envs.known_env_names()) or any registered Gymnasium id such "
        f"as 'ALE/Pong-v5', 'PongNoFrameskip-v4' or 'CartPole-v1'."
    )


def _version(env_id: str) -> int:
    v = gym.registry[env_id].version
    return int(v) if v is not None else 0


def _atari_spec(display: str, env_id: str) -> EnvSpec:
    reg = gym.registry[env_id]
    kw = dict(reg.kwargs)
    m = re.fullmatch(r"(?:ALE/)?([A-Za-z0-9]+?)(?:NoFrameskip|Deterministic)?-v\d+", env_id)
    game = m.group(1) if m else display
    obs_type = kw.get("obs_type", "rgb")
    base_skip = kw.get("frameskip", 4)
    if obs_type != "rgb" and obs_type != "grayscale":
        raise ValueError(
            f"{env_id!r} observes {obs_type!r}; rlime's Atari pipeline is pixel-based. "
            f"Use 'ALE/{game}-v5' (or the short name {game!r})."
        )
    if not isinstance(base_skip, int):
        raise ValueError(
            f"{env_id!r} uses a stochastic frameskip {base_skip!r}, which the DQN preprocessing "
            f"(fixed action repeat 4 with max-pooling) cannot reproduce. Use 'ALE/{game}-v5' "
            f"(sticky actions, the recommended protocol) or '{game}NoFrameskip-v4' "
            f"(the classic deterministic protocol)."
        )
    frameskip = ATARI_PREPROCESSING["frameskip"]
    max_frames = int(kw.get("max_num_frames_per_episode") or 108_000)
    protocol: dict[str, Any] = {
        "env_id": env_id,
        "env_version": _version(env_id),
        "family": "atari",
        "game": kw["game"],
        "frameskip": frameskip,
        "maxpool": ATARI_PREPROCESSING["maxpool"],
        "repeat_action_probability": float(kw.get("repeat_action_probability", 0.0)),
        "action_set": "full" if kw.get("full_action_space", False) else "minimal",
        "terminal_on_life_loss": False,
        "fire_reset": ATARI_PREPROCESSING["fire_reset"],
        "reward_clipping": ATARI_REWARD_CLIPPING,
        "reward_clipping_scope": "learning only (env rewards and logged returns are raw)",
        "logged_return": "raw game score",
        "max_num_frames_per_episode": max_frames,
        "max_episode_steps": max_frames // frameskip,
        "noop_max": ATARI_PREPROCESSING["noop_max"],
        "frame_stack": ATARI_PREPROCESSING["frame_stack"],
        "frame_stack_padding": "zeros",
        "screen_size": ATARI_PREPROCESSING["screen_size"],
        "grayscale": ATARI_PREPROCESSING["grayscale"],
        "autoreset_mode": "next_step",
    }
    return EnvSpec(
        name=display,
        env_id=env_id,
        family="atari",
        observation_kind="pixels",
        protocol=protocol,
        rom=kw["game"],
    )


def _minatar_spec(display: str, env_id: str) -> EnvSpec:
    kw = gym.registry[env_id].kwargs
    protocol = {**_gym_spec(display, env_id).protocol,
                "family": "minatar", "game": kw["game"],
                "repeat_action_probability": MINATAR_PROTOCOL["repeat_action_probability"],
                "difficulty_ramping": MINATAR_PROTOCOL["difficulty_ramping"],
                "action_set": "minimal" if kw.get("use_minimal_action_set") else "full",
                "logged_return": "raw game score", "observation": "(C, 10, 10) uint8 in {0, 1}"}
    return EnvSpec(name=display, env_id=env_id, family="minatar", observation_kind="planes",
                   protocol=protocol, rom=kw["game"])


def _gym_spec(display: str, env_id: str) -> EnvSpec:
    reg = gym.registry[env_id]
    entry = reg.entry_point if isinstance(reg.entry_point, str) else ""
    family = "classic" if entry.startswith(_CLASSIC_ENTRY_PREFIX) else "gym"
    try:
        probe = gym.make(env_id)
    except Exception as exc:  # missing optional dependency (box2d, mujoco, ...)
        raise ValueError(
            f"{env_id!r} is registered but could not be created ({type(exc).__name__}: {exc})."
        ) from exc
    try:
        space = probe.observation_space
        cap = probe.spec.max_episode_steps if probe.spec is not None else reg.max_episode_steps
    finally:
        probe.close()
    if isinstance(space, gym.spaces.Box) and space.dtype == "uint8" and len(space.shape) >= 2:
        kind = "pixels"
    elif isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        kind = "vector"
    else:
        kind = "other"
    cap_value: Any = int(cap) if cap is not None else "none"
    protocol: dict[str, Any] = {
        "env_id": env_id,
        "env_version": _version(env_id),
        "family": family,
        "game": _NOT_APPLICABLE,
        "frameskip": 1,
        "maxpool": False,
        "repeat_action_probability": 0.0,
        "action_set": "native",
        "terminal_on_life_loss": False,
        "fire_reset": False,
        "reward_clipping": "none",
        "reward_clipping_scope": "none",
        "logged_return": "raw episode return",
        "max_num_frames_per_episode": cap_value,
        "max_episode_steps": cap_value,
        "noop_max": 0,
        "frame_stack": 1,
        "frame_stack_padding": _NOT_APPLICABLE,
        "screen_size": _NOT_APPLICABLE,
        "grayscale": _NOT_APPLICABLE,
        "autoreset_mode": "next_step",
    }
    return EnvSpec(name=display, env_id=env_id, family=family, observation_kind=kind, protocol=protocol)


def resolve_env(name: str) -> EnvSpec:
    """Resolve a short name or a registered Gymnasium id to an :class:`EnvSpec`.

    Raises:
        ValueError: unknown name (the message suggests the closest known names), or a registered
            id rlime cannot run under its protocol (e.g. stochastic-frameskip Atari ids).

    The protocol dict has these keys (all JSON/TOML-serialisable, no None; "n/a" where a key
    does not apply):

    ``env_id``, ``env_version``, ``family``, ``game`` (ALE ROM id), ``frameskip`` (agent action
    repeat in emulator frames), ``maxpool``, ``repeat_action_probability`` (sticky actions),
    ``action_set`` ("minimal"/"full"; "native" outside Atari), ``terminal_on_life_loss`` (does a
    lost life end a *training* episode; set by :meth:`EnvSpec.configured` / ``make_vector_env``),
    ``fire_reset``, ``reward_clipping`` ("clip[-1,1]" or "none"), ``reward_clipping_scope``,
    ``logged_return``, ``max_num_frames_per_episode``, ``max_episode_steps`` (the episode cap,
    in emulator frames and in agent steps), ``noop_max``, ``frame_stack``,
    ``frame_stack_padding``, ``screen_size``, ``grayscale``, ``autoreset_mode``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"Environment name must be a non-empty string, got {name!r}.")
    name = name.strip()
    _register_all()

    short = None
    if "/" not in name and not re.search(r"-v\d+$", name):
        short = _short_names().get(_norm(name))
    if short is not None:
        display, env_id = short
    else:
        env_id = _lookup_id(name)
        if env_id is None:
            raise _unknown(name)
        # A registered id keeps its id as display name unless it is a short name's canonical id.
        canonical = {v: d for d, v in _short_names().values()}
        display = canonical.get(env_id, env_id)

    if gym.registry[env_id].entry_point == _ATARI_ENTRY_POINT:
        return _atari_spec(display, env_id)
    if gym.registry[env_id].entry_point == _MINATAR_ENTRY_POINT:
        return _minatar_spec(display, env_id)
    return _gym_spec(display, env_id)
