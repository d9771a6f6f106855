"""rlime environment factory: short names -> configured Gymnasium vector envs.

``resolve_env("Pong")`` gives an :class:`EnvSpec` (env id, family, observation kind and the
benchmark protocol to record with every result); ``make_vector_env(spec_or_name, num_envs, seed)``
builds the seeded vector env (ALE Atari through ale-py's native vector env with the DQN
preprocessing; classic control through ``SyncVectorEnv``) with one autoreset/info contract for
both families. This package imports no agent or harness code.
"""

from envs.factory import RlimeVectorEnv, make_vector_env
from envs.spec import EnvSpec, known_env_names, resolve_env

__all__ = ["EnvSpec", "RlimeVectorEnv", "known_env_names", "make_vector_env", "resolve_env"]
