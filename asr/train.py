"""Training: CTC loss, AdamW with warm-up and cosine decay, gradient clipping, dev WER per epoch, checkpoints."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr.bundle import make_bundle, read_bundle, save_bundle
from asr.chunking import chunkwise_backward
from asr.config import Config, ConfigError, save_config
from asr.data import SpeechDataset, iterate_batches, make_batches
from asr.decode import greedy_ids
from asr.features import load_cmvn
from asr.manifest import read_manifest
from asr.model import AcousticModel
from asr.score import compute
from asr.text import build_tokenizer, load_tokenizer

log = logging.getLogger("asr.train")


@dataclass
class TrainState:
    """Run state, kept apart from the (frozen) config."""
    epoch: int = 0
    step: int = 0
    best_wer: float = math.inf
    best_epoch: int = 0
    elapsed: float = 0.0  # seconds of training so far


def lr_factor(progress: float, step: int, warmup: int, final_ratio: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay from 1 to `final_ratio` as progress goes 0 → 1."""
    if step < warmup:
        return (step + 1) / warmup
    p = min(max(progress, 0.0), 1.0)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def ctc_loss(log_probs: torch.Tensor, out_lens: torch.Tensor, targets: torch.Tensor,
             target_lens: torch.Tensor) -> torch.Tensor:
    """Summed CTC loss divided by the batch size; log_probs (B, T, V) in fp32."""
    loss = torch.nn.functional.ctc_loss(log_probs.float().transpose(0, 1), targets, out_lens, target_lens,
                                        blank=0, reduction="sum", zero_infinity=True)
    return loss / log_probs.shape[0]


def _setup_logging(exp: Path) -> None:
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        log.removeHandler(h)
    handler = logging.FileHandler(exp / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    log.propagate = False


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_train_utts(cfg: Config):
    utts = read_manifest(cfg.data.train)
    kept = [u for u in utts if u.duration <= cfg.data.max_duration]
    if len(kept) < len(utts):
        log.warning("skipped %d training utterances longer than %.1f s", len(utts) - len(kept), cfg.data.max_duration)
    if not kept:
        raise ValueError(f"{cfg.data.train}: no training utterance is shorter than data.max_duration")
    return kept


def evaluate(model: AcousticModel, ds: SpeechDataset, tokenizer, device: torch.device,
             batch_size: int = 32) -> tuple[float, float]:
    """Greedy WER and CER (percent) of `model` on a dataset."""
    model.eval()
    refs, hyps = [], []
    batches = make_batches([ds.frames(i) for i in range(len(ds))], batch_size, 10**9, shuffle=False)
    with torch.no_grad():
        for idx, b in zip(batches, iterate_batches(ds, batches)):
            log_probs, out_lens = model(b.feats.to(device), b.feat_lens.to(device))
            hyps += [tokenizer.decode(ids) for ids in greedy_ids(log_probs, out_lens)]
            refs += [ds.utts[i].text for i in idx]
    model.train()
    score = compute(refs, hyps)
    return score.wer, score.cer


def _device(cfg: Config) -> torch.device:
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is available")
    if cfg.train.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.train.device)


def train(cfg: Config, progress: bool = True) -> Path:
    """Train a model as configured; returns the path of the best model bundle (`EXP/model.pt`)."""
    exp = Path(cfg.train.exp_dir)
    exp.mkdir(parents=True, exist_ok=True)
    save_config(cfg, exp / "config.yaml")
    _setup_logging(exp)
    _seed_everything(cfg.train.seed)
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    device = _device(cfg)

    train_utts = _load_train_utts(cfg)
    if cfg.tokenizer.file:
        tokenizer = load_tokenizer(cfg.tokenizer.file)
    else:
        tokenizer = build_tokenizer(cfg.tokenizer.kind, [u.text for u in train_utts], cfg.tokenizer.vocab_size,
                                    cfg.tokenizer.double_letters)
    train_set = SpeechDataset(train_utts, tokenizer, cfg.features, train=True, cache=cfg.data.cache_features)
    if cfg.data.cmvn:
        mean, std = load_cmvn(cfg.data.cmvn, cfg.features.n_mels)
    else:
        mean, std = train_set.compute_cmvn(progress)
    train_set.set_cmvn(mean, std)
    dev_set = None
    if cfg.data.dev:
        dev_set = SpeechDataset(read_manifest(cfg.data.dev), tokenizer, cfg.features, cache=cfg.data.cache_features)
        dev_set.set_cmvn(mean, std)

    model = AcousticModel(cfg.model, cfg.features.n_mels, tokenizer.vocab_size).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("device %s, %d training utterances (%.1f min), %d parameters, vocabulary %d",
             device, len(train_set), sum(u.duration for u in train_utts) / 60, n_params, tokenizer.vocab_size)
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    lengths = [train_set.frames(i) for i in range(len(train_set))]
    steps_per_epoch = len(make_batches(lengths, cfg.train.batch_size, cfg.train.max_batch_frames, shuffle=False))
    total_steps = steps_per_epoch * cfg.train.epochs
    budget = cfg.train.max_minutes * 60

    # mixed precision: bf16 autocast (no scaler needed), or fp16 autocast with a gradient scaler (CUDA);
    # the CTC loss always runs in fp32 (ctc_loss casts), as do the optimiser and the master weights
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.train.precision)
    if cfg.train.precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision=fp16 needs CUDA; use bf16 on CPU")

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16")
    state = TrainState()
    start = time.monotonic()
    out_of_time = False
    for epoch in range(1, cfg.train.epochs + 1):
        state.epoch = epoch
        sorta = cfg.train.sortagrad and epoch == 1  # shortest batches first in epoch 1, shuffled after
        batches = make_batches(lengths, cfg.train.batch_size, cfg.train.max_batch_frames, shuffle=not sorta,
                               seed=cfg.train.seed + epoch)
        bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.train.epochs}", unit="batch", disable=not progress)
        total_loss, total_audio = 0.0, 0.0
        epoch_start = time.monotonic()
        for batch in iterate_batches(train_set, batches):
            elapsed = time.monotonic() - start
            progress_frac = state.step / total_steps
            if budget > 0:
                progress_frac = max(progress_frac, elapsed / budget)
            for group in optim.param_groups:
                group["lr"] = cfg.train.lr * lr_factor(progress_frac, state.step, cfg.train.warmup_steps,
                                                       cfg.train.final_lr_ratio)
            targets, target_lens = batch.targets.to(device), batch.target_lens.to(device)
            optim.zero_grad(set_to_none=True)
            with autocast():
                if cfg.model.tbptt_chunk > 0:  # truncated BPTT: activation memory bounded by the chunk
                    loss, _ = chunkwise_backward(
                        model, batch.feats.to(device), batch.feat_lens.to(device),
                        lambda lp, ol, t=targets, n=target_lens: scaler.scale(ctc_loss(lp, ol, t, n)))
                    loss = loss / scaler.get_scale() if scaler.is_enabled() else loss
                else:
                    log_probs, out_lens = model(batch.feats.to(device), batch.feat_lens.to(device))
                    loss = ctc_loss(log_probs, out_lens, targets, target_lens)
                    scaler.scale(loss).backward()
            scaler.unscale_(optim)
            grad_norm = None
            if cfg.train.grad_clip > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip))
            scaler.step(optim)
            scaler.update()
            state.step += 1
            loss_value = float(loss.detach())
            total_loss += loss_value * len(batch.ids)
            total_audio += float(batch.feat_lens.sum()) * cfg.features.hop_ms / 1000
            speed = total_audio / max(time.monotonic() - epoch_start, 1e-6)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", rtf=f"{speed:.0f}x", lr=f"{optim.param_groups[0]['lr']:.1e}")
            if state.step % 50 == 0:
                log.info("epoch %d step %d loss %.4f grad_norm %s lr %.2e audio/s %.1fx", epoch, state.step,
                         loss_value, f"{grad_norm:.2f}" if grad_norm is not None else "-",
                         optim.param_groups[0]["lr"], speed)
            if budget > 0 and time.monotonic() - start >= budget:
                out_of_time = True
                break
        bar.close()
        state.elapsed = time.monotonic() - start
        msg = (f"epoch {epoch} done: mean loss {total_loss / max(len(train_set), 1):.4f}, "
               f"{time.monotonic() - epoch_start:.1f} s")
        wer = None
        if dev_set is not None:
            wer, cer = evaluate(model, dev_set, tokenizer, device)
            msg += f", dev WER {wer:.2f}% CER {cer:.2f}%"
        log.info(msg)
        if progress:
            tqdm.write(msg)
        run_state = {"epoch": epoch, "step": state.step, "dev_wer": wer if wer is not None else -1.0}
        ckpt = make_bundle(model, cfg, tokenizer, mean, std, train_state=run_state)
        save_bundle(ckpt, exp / "last.pt")
        if cfg.train.keep_checkpoints > 0:
            save_bundle(ckpt, exp / "checkpoints" / f"epoch-{epoch:04d}.pt")
            for old in sorted((exp / "checkpoints").glob("epoch-*.pt"))[:-cfg.train.keep_checkpoints]:
                old.unlink()
        if wer is None or wer <= state.best_wer:
            state.best_wer = wer if wer is not None else state.best_wer
            state.best_epoch = epoch
            save_bundle(ckpt, exp / "best.pt")
        if out_of_time:
            log.info("stopping: train.max_minutes=%.1f reached after epoch %d", cfg.train.max_minutes, epoch)
            break
    best = exp / "best.pt"
    bundle_path = exp / "model.pt"
    save_bundle(read_bundle(best), bundle_path)
    log.info("best epoch %d (dev WER %s); model bundle %s; training time %.1f s", state.best_epoch,
             f"{state.best_wer:.2f}%" if state.best_wer < math.inf else "n/a", bundle_path, state.elapsed)
    return bundle_path
