"""DQN on the chip: its phase vocabulary (`phases`) and mappings of Q network, target network
and replay memory onto the hardware (`mappings`). Imports `rlime.cost`, `rlime.hw`,
`rlime.common`."""
