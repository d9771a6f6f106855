"""The simulated chip, knowing nothing of RL: device physics, tuning, periphery, crossbar arrays,
ledger, chip, torch layers, the tuned optimizer and the rram/float backend. Imports only
`rlime.common`."""
