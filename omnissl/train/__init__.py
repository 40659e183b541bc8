"""Training: the runner, optimizers and schedules, checkpoints, distributed set-up."""
