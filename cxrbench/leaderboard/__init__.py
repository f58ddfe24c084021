"""The leaderboard: a pure function of the results folder."""

from cxrbench.leaderboard.table import Board, build_boards, load_runs

__all__ = ["Board", "build_boards", "load_runs"]
