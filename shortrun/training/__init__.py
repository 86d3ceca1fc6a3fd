"""Algorithm 1, learning the short-run sampler.

- `step.py`: one iteration and its loss (`LearningStep`, `short_run_loss`): no run directory needed;
- `loop.py`: the loop that wires the parts together (`Trainer`, `train`);
- `guard.py`: divergence detection and rollback;
- `ema.py`: the moving average of the weights used for sampling (train.ema);
- `state.py`, `checkpoint.py`: what a restart needs, and its file format;
- `schedule.py`: the lr and σ schedules and the batch order;
- `metrics_log.py`: RUN/metrics.jsonl and TensorBoard;
- `runlock.py`: one writer per run directory (an OS lock on RUN/.lock).
"""
from .loop import Trainer, resumed_config, train
from .step import LearningStep, short_run_loss

__all__ = ["Trainer", "resumed_config", "train", "LearningStep", "short_run_loss"]
