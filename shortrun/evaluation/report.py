"""RUN/report.html: one page a researcher reads offline: settings, metrics, samples,
interpolation, reconstruction, diagnostics. Figures are PNG files in RUN/report/ beside it,
linked relatively, so the folder can be copied or zipped as it is.
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import UserError

FIGURES = [  # (file in RUN/report/, heading, caption)
    ("samples.png", "Samples", "x = M_θ(z, u) for fresh z ~ p₀ and u: the learned short-run sampler."),
    ("toy_panels.png", "Densities", "True density, exp f_θ normalised on the grid, and a density estimate "
                                    "of the short-run samples q_θ."),
    ("interpolation.png", "Interpolation", "z_ρ = μ + ρ (z₁−μ) + √(1−ρ²) (z₂−μ) with the same u along each row (paper Fig. 3; μ = p₀'s mean, 0 for uniform noise)."),
    ("reconstruction.png", "Reconstruction", "Observed images, then M_θ(z_t, u) over gradient-descent steps t "
                                             "on z, through all K Langevin steps (paper Fig. 4)."),
    ("reconstruction_curve.png", "Reconstruction error", "Mean per-pixel squared error ([0, 1] scale) over "
                                                         "descent steps, training and held-out images."),
    ("training.png", "Training diagnostics", "Energy difference and gradient magnitude along the chain over "
                                             "training (from metrics.jsonl)."),
    ("long_run.png", "Short-run vs long-run chains", "The same chains continued past K: the model is the "
                                                     "K-step sampler, not the long-run limit of p_θ."),
]

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd}
.cap{color:#555;font-size:90%}.sec{columns:2;font-size:85%}"""

# marks every image as loaded or not, so a headless browser test can check them from the DOM
_CHECK = """<script>window.addEventListener('load',()=>{for(const i of document.images){
i.dataset.loaded=(i.complete&&i.naturalWidth>0)?'yes':'no'}});</script>"""


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.5g}"
    return html.escape(str(v))


# metric -> (what gives it scale, the metrics holding that scale); lower is better for all of these
SCALES = {
    "digits_fd": ("real training digits (floor) / uniform noise (ceiling)", ("digits_fd_real_train", "digits_fd_noise")),
    "reconstruction_mse_train": ("predicting the mean training image", ("reconstruction_mse_mean_image",)),
    "reconstruction_mse_heldout": ("predicting the mean training image", ("reconstruction_mse_mean_image",)),
    "kl_p_q": ("an exact sample of the same size", ("kl_p_q_floor",)),
    "tv_p_q": ("an exact sample of the same size", ("tv_p_q_floor",)),
    "fid": ("published for this method on CIFAR-10: about 44", ()),
}


def _metrics_table(metrics: dict) -> str:
    """Each headline metric beside what gives it scale; the rest below, plainly."""
    shown, rows = set(), []
    for key, (what, refs) in SCALES.items():
        if key in metrics:
            scale = " / ".join(_fmt(metrics.get(r)) for r in refs)
            rows.append(f"<tr><th>{html.escape(key)}</th><td>{_fmt(metrics[key])}</td>"
                        f"<td>{scale}</td><td class='cap'>{html.escape(what)}</td></tr>")
            shown.update((key, *refs))
    rows += [f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td><td></td><td></td></tr>"
             for k, v in metrics.items() if k not in shown]
    head = "<tr><th>metric</th><th>value</th><th>scale</th><th>scale from</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _table(rows: dict) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def _read_object(path: Path) -> dict:
    """A JSON object from `path`; {} (with a warning) when it is missing, damaged or not an object, so
    the report still shows what the run has."""
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text(errors="replace"))
    except (ValueError, OSError) as e:
        print(f"warning: {path} is not readable JSON ({e}); left out of the report", file=sys.stderr)
        return {}
    if not isinstance(value, dict):
        print(f"warning: {path} holds no JSON object; left out of the report", file=sys.stderr)
        return {}
    return value


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def write_report(run: str | Path) -> Path:
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"run directory {run} does not exist")
    if not any((run / name).exists() for name in ("config.json", "eval.json", "metrics.jsonl", "checkpoints")):
        raise UserError(f"{run} holds no run (no config.json, metrics.jsonl, eval.json or checkpoints/)")
    cfg, ev = _read_object(run / "config.json"), _read_object(run / "eval.json")
    scalars = {k: v for k, v in _dict(ev.get("metrics")).items() if isinstance(v, (int, float, str)) or v is None}
    notes = ev.get("notes") if isinstance(ev.get("notes"), list) else []
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>shortrun report: {html.escape(run.name)}"
             f"</title><style>{_STYLE}</style>{_CHECK}</head><body>",
             f"<h1>shortrun report: {html.escape(run.name)}</h1>",
             f"<p>Short-run MCMC toward an EBM (Nijkamp et al. 2019). Iteration {_fmt(ev.get('iter', '?'))}, "
             f"dataset <b>{html.escape(str(_dict(cfg.get('data')).get('name', '?')))}</b>.</p>",
             "<h2>Metrics</h2>", _metrics_table(scalars) if scalars else "<p>No evaluation yet: run "
             "<code>shortrun evaluate --run RUN</code>.</p>"]
    for role, who in _dict(ev.get("code")).items():
        if isinstance(who, dict):
            parts.append(f"<p class='cap'>{html.escape(role.replace('_', ' '))} shortrun "
                         f"{html.escape(str(who.get('version')))} (commit {html.escape(str(who.get('commit')))})</p>")
    for note in notes:
        parts.append(f"<p class='cap'>{html.escape(str(note))}</p>")
    for name, heading, caption in FIGURES:
        if (run / "report" / name).exists():
            parts.append(f"<h2>{heading}</h2><img src='report/{name}' alt='{heading}'>"
                         f"<p class='cap'>{html.escape(caption)}</p>")
    parts.append("<h2>Settings</h2>")
    for section, values in cfg.items():
        values = values if isinstance(values, dict) else {"value": values}
        parts.append(f"<h3>{html.escape(section)}</h3><div class='sec'>{_table(values)}</div>")
    parts.append("</body></html>")
    return write_text_atomic(run / "report.html", "\n".join(parts))
