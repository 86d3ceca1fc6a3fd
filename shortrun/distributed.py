"""One code path for 1 or N processes, on top of torch.distributed (launched by torchrun).

Without torchrun's environment everything here is a no-op: rank 0 of a world of 1.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True when started by torchrun (or another launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def env_rank() -> int:
    """This process's rank as torchrun announced it, usable before the process group exists."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


def setup(device_name: str = "auto") -> World:
    """Joins the process group if torchrun started us: nccl on GPUs, gloo on CPUs."""
    if not launched():
        return World()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name != "cpu"
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and device_name != "cpu":
        torch.cuda.set_device(local)
    return World(dist.get_rank(), dist.get_world_size(), local)


def device_for(world: World, device_name: str) -> str:
    """Each rank gets its own GPU (cuda:LOCAL_RANK) when the config says auto or cuda."""
    if world.size > 1 and device_name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{world.local_rank}"
    return device_name


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def any_rank(world: World, flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any rank (so all ranks stop or roll back together)."""
    if world.size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def same_on_all_ranks(world: World, value: int | None, device: torch.device) -> int | None:
    """Rank 0's value on every rank (e.g. a schedule length each rank would otherwise time itself)."""
    if world.size == 1:
        return value
    t = torch.tensor([-1 if value is None else value], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return None if t.item() < 0 else int(t.item())


def same_tensors_on_all_ranks(world: World, obj, device: torch.device):
    """`obj` with rank 0's values in each of its tensor attributes (CPU tensors, updated in place)."""
    if world.size == 1:
        return obj
    for name, value in list(vars(obj).items()):
        if torch.is_tensor(value):
            t = value.to(device)
            dist.broadcast(t, src=0)
            setattr(obj, name, t.cpu())
    return obj


def gather_cat(world: World, x: torch.Tensor) -> torch.Tensor:
    """Concatenates equal-shaped tensors from all ranks, in rank order (on every rank)."""
    if world.size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world.size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
