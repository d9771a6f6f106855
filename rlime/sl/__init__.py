"""Supervised learning in memory: a classifier trained on the same simulated chip, layers,
update modes, tuning schemes, ledger and energy model as the DQN agents (TIME's other half:
supervised learning on MNIST, 5.3x more energy-efficient than DaDianNao).

    python -m rlime.sl --dataset digits            # scikit-learn's bundled 8 x 8 digits
    python -m rlime.sl --dataset mnist --data DIR  # MNIST from local IDX (or .npz) files

`data` (datasets, the MNIST IDX reader), `nets` (MLP and LeNet-5), `phases` (the ledger's
phase axis), `config` (settings -> `SLConfig`), `trainer` (the epoch loop, checkpoints, the
run directory), `summary` (summary.json: accuracy, writes, energy, GPU / ASIC baselines),
`cli` (the command line). This package sits beside the DQN harness: it uses the hardware, the
cost model and the harness's shared pieces (`rlime.harness.session`, `pipeline`, `run_dir`,
`attribution`), and loads no RL code.
"""
