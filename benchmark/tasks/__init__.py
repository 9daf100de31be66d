"""Downstream tasks, one module per task kind (their cards live in the top-level tasks/)."""
