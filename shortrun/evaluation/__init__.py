"""Judging a trained run: metrics, diagnostics, figures and the report.

    from shortrun.evaluation import evaluate
    result = evaluate("runs/d1", n=1000)   # also writes RUN/eval.json, RUN/report/*.png, RUN/report.html

- `evaluate.py`: the `shortrun evaluate` command's body;
- `metrics/`: FID/IS, the digits classifier's scores, 2-D density divergences, Fréchet distance;
- `moments.py`: the moment-matching check; `diagnostics.py`: training curves and long-run chains;
- `task_figures.py`, `figures.py`: interpolation and reconstruction figures, labelled image tables;
- `report.py`: RUN/report.html.
"""
from .evaluate import evaluate, format_table

__all__ = ["evaluate", "format_table"]
