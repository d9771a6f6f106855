"""What the counted operations cost: energy presets paired with their hardware, pricing by
category, GPU / ASIC baselines of the same workload, and wear. Imports `rlime.hw` (torch-free
parts for pricing) and `rlime.common`."""
