"""Leaderboard build: load -> tables -> ranks -> plots -> render."""
