"""M_θ(z, u): the short-run sampler as pure functions of the network, the start and the noise.

- `chain.py`: one Langevin step and the K-step chain (`langevin`), and p_0 (`initial`);
- `fitted.py`: p_0 as a Gaussian fitted to the training data (`sampler.init=fitted`; not in the paper);
- `inputgrad.py`: ∇ₓf by hand for the paper's ConvNets on the CPU (the chain's fast path);
- `cuda_graph.py`: the chain captured as one CUDA graph (GPU, opt-in);
- `segmented.py`: the differentiable chain with gradient checkpointing (reconstruction memory).
"""
from .chain import initial, langevin, langevin_step

__all__ = ["initial", "langevin", "langevin_step"]
