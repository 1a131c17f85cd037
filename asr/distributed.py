"""Data-parallel training under `torchrun`: process group set-up, batch sharding, gradient and value reduction.

One process per device. Every rank builds the same global batches (same lengths, same seed); rank r trains
on every world-th utterance of each global batch (utterances are length-sorted inside a batch, so shards are
balanced). Gradients are averaged by DistributedDataParallel (or, for chunk-wise TBPTT, by one coalesced
all-reduce), so a step equals one step of a single process on the whole global batch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """Rank and world size as set by torchrun (WORLD_SIZE, RANK, LOCAL_RANK); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(d: Dist, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU); each rank gets its own GPU. Returns the device."""
    if not d.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def shard(batch: list[int], rank: int, world: int) -> list[int]:
    """This rank's part of a global batch: items rank, rank + world, ... (disjoint, together complete)."""
    return batch[rank::world]


def all_reduce_grads(params, world: int) -> None:
    """Average the gradients of `params` over all ranks with one coalesced all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce(values: list[float], device: torch.device, d: Dist, op: str = "sum") -> list[float]:
    """Sum (or "max") a few numbers over all ranks; the values themselves in a single process."""
    if not d.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
    return t.tolist()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def gather_objects(obj, d: Dist) -> list | None:
    """Every rank's `obj` on rank 0 (a list indexed by rank); None elsewhere."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world if d.main else None
    dist.gather_object(obj, out, dst=0)
    return out
