"""Benchmark suites: suite files, the runner (local or Ray), estimates, run labels, the
leaderboard and its plots, and statistics. The leaderboard, labels and statistics load without
torch."""
