"""Truncated-BPTT training: the chunk-at-a-time backward pass.

The chunked forward itself (windows of K frames + R right-context frames, state carried detached from chunk
to chunk) lives with the model (`asr.model`); this module holds what training does with it:
`chunkwise_backward` keeps the activation memory of one training step to that of one chunk.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asr.model import window_at, window_lengths


def _rng_state(device: torch.device):
    return (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def chunkwise_backward(model, feats: torch.Tensor, lengths: torch.Tensor, loss_fn) -> tuple[torch.Tensor, int]:
    """Truncated-BPTT training step whose activation memory grows with the chunk, not the utterance.

    Because no gradient crosses a chunk boundary through the recurrent state, the gradient of a chunk's
    parameters depends only on the gradient of the loss with respect to that chunk's outputs. So:
    (1) run every chunk without building a graph, keeping the carried states and RNG states, and compute
    the CTC loss over the whole utterance and its gradient with respect to the log-probabilities;
    (2) run each chunk again with a graph from its saved state (same dropout masks) and backpropagate
    that chunk's slice of the gradient, then free it. The front end keeps its (small) graph for the whole
    utterance. Gradients equal those of backpropagating through `model(feats, lengths)` in chunked mode.

    `loss_fn(log_probs, out_lens)` returns the scalar loss. Returns (loss, number of chunks)."""
    cfg = model.cfg
    chunk, context = cfg.tbptt_chunk, cfg.right_context
    x, out_lens = model.frontend(feats, lengths)
    xd = x.detach().requires_grad_(True)
    t = x.shape[1]
    n_chunks = max(1, math.ceil(t / chunk))
    wlens = window_lengths(out_lens.to(x.device), n_chunks, chunk, context)
    states: list = [None] * len(model.rnns)
    saved, rngs, outs = [], [], []
    with torch.no_grad():
        for c in range(n_chunks):
            saved.append(states)
            rngs.append(_rng_state(x.device))
            lp, states = model.chunk_forward(window_at(xd, c, chunk, context), wlens[:, c], states)
            outs.append(lp)
    log_probs = torch.cat(outs, dim=1)[:, :t].requires_grad_(True)
    loss = loss_fn(log_probs, out_lens)
    loss.backward()
    grad = nn.functional.pad(log_probs.grad, (0, 0, 0, n_chunks * chunk - t))
    rng_now = _rng_state(x.device)
    for c in range(n_chunks):
        _set_rng_state(rngs[c], x.device)
        lp, _ = model.chunk_forward(window_at(xd, c, chunk, context), wlens[:, c], saved[c])
        lp.backward(grad[:, c * chunk:(c + 1) * chunk])
    _set_rng_state(rng_now, x.device)
    if x.requires_grad:
        x.backward(xd.grad)
    return loss.detach(), n_chunks
