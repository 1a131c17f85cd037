"""Data-parallel helpers (asr.distributed): sharding, a single process, and a real two-process gloo group."""

import json
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from asr import distributed
from asr.distributed import Dist


@pytest.mark.parametrize("n,world", [(10, 2), (7, 3), (2, 4), (0, 2), (5, 1)])
def test_shards_are_disjoint_and_together_the_whole_batch(n, world):
    batch = list(range(100, 100 + n))
    shards = [distributed.shard(batch, r, world) for r in range(world)]
    assert sorted(i for s in shards for i in s) == batch
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1  # balanced
    assert all(s == sorted(s) for s in shards)  # each rank keeps the batch's (length) order


def test_shards_interleave_so_ranks_get_similar_lengths():
    assert distributed.shard([0, 1, 2, 3, 4, 5, 6], 0, 3) == [0, 3, 6]
    assert distributed.shard([0, 1, 2, 3, 4, 5, 6], 2, 3) == [2, 5]


def test_without_torchrun_it_is_one_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    d = distributed.from_env()
    assert d == Dist(0, 1, 0) and not d.enabled and d.main
    assert distributed.init(d, torch.device("cpu")) == torch.device("cpu")
    assert not dist.is_initialized()
    values = [1.5, 2.0]
    reduced = distributed.all_reduce(values, torch.device("cpu"), d, op="max")
    assert reduced == values and reduced is not values
    assert distributed.gather_objects({"n": 3}, d) == [{"n": 3}]
    distributed.barrier(d)
    distributed.shutdown(d)


def test_torchrun_variables_give_rank_and_world(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "1")
    d = distributed.from_env()
    assert d == Dist(5, 8, 1) and d.enabled and not d.main


def _rank(rank: int, world: int, port: int, out: str) -> None:
    """One rank of a gloo group on 127.0.0.1: reduce and gather rank-dependent values, write what it got."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    d = distributed.from_env()
    device = distributed.init(d, torch.device("cpu"))
    summed = distributed.all_reduce([rank + 1.0, 10.0 * rank], device, d)
    largest = distributed.all_reduce([rank + 1.0, -float(rank)], device, d, op="max")
    weight = torch.nn.Parameter(torch.zeros(2, 3))
    bias = torch.nn.Parameter(torch.zeros(3))
    frozen = torch.nn.Parameter(torch.zeros(1))  # no gradient: left alone
    weight.grad = torch.full((2, 3), float(rank + 1)) + torch.arange(6.0).view(2, 3)
    bias.grad = torch.tensor([4.0 * rank, 1.0, -2.0 * rank])
    distributed.all_reduce_grads([weight, bias, frozen], d.world)
    gathered = distributed.gather_objects({"rank": rank, "items": list(range(rank + 1))}, d)
    distributed.barrier(d)
    distributed.shutdown(d)
    result = {"summed": summed, "largest": largest, "weight": weight.grad.tolist(), "bias": bias.grad.tolist(),
              "frozen": frozen.grad, "gathered": gathered, "initialized_after": dist.is_initialized()}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_reduce_and_gather(tmp_path):
    # forked, not spawned: a spawned rank spends seconds importing torch again; the ranks set one thread first
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.start_processes(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False, start_method=method)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the two ranks did not finish in 120 s")
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    for r in (r0, r1):
        assert r["summed"] == [3.0, 10.0]
        assert r["largest"] == [2.0, 0.0]
        assert r["weight"] == [[1.5, 2.5, 3.5], [4.5, 5.5, 6.5]]  # mean of (rank + 1) + arange over ranks 0, 1
        assert r["bias"] == [2.0, 1.0, -1.0]
        assert r["frozen"] is None and r["initialized_after"] is False
    assert r0["gathered"] == [{"rank": 0, "items": [0]}, {"rank": 1, "items": [0, 1]}]
    assert r1["gathered"] is None
