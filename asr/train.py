"""Training: CTC loss, AdamW with warm-up and cosine decay, gradient clipping, dev WER per epoch, checkpoints,
exact resume, data-parallel ranks under torchrun, TensorBoard scalars and a PNG of the curves."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr import distributed
from asr.bundle import make_bundle, read_bundle, save_bundle
from asr.chunking import chunkwise_backward
from asr.config import Config, ConfigError, save_config, to_dict
from asr.data import EpochSampler, SpeechDataset, epoch_batches, frame_count, make_batches, training_loader
from asr.decode import batched_log_probs, greedy_ids
from asr.features import load_cmvn
from asr.fileio import atomic_path, folder_lock
from asr.manifest import read_manifest
from asr.model import AcousticModel, bf16_problem, flush_denormals
from asr.score import compute
from asr.text import build_tokenizer, load_tokenizer, tokenizer_from_state

log = logging.getLogger("asr.train")

RESUME = "resume.pt"
# settings that may change between an interrupted run and its resumption; any other change is refused
RESUMABLE = {"train.max_minutes", "train.num_threads", "train.checkpoint_every", "train.keep_checkpoints",
             "train.log_every", "train.tensorboard", "train.device", "data.num_workers", "train.exp_dir"}


@dataclass
class TrainState:
    """Everything about the run's progress that a resumed run needs, apart from weights and RNGs."""
    epoch: int = 1  # the epoch in progress (1-based)
    batch_in_epoch: int = 0  # global batches of that epoch already trained
    step: int = 0
    best_wer: float = math.inf
    best_epoch: int = 0
    elapsed: float = 0.0  # seconds of training so far (all sessions)
    epoch_loss: float = 0.0  # summed utterance losses of this rank in the epoch in progress
    epoch_audio: float = 0.0  # seconds of audio of this rank in the epoch in progress
    epoch_utts: float = 0.0  # utterances this rank trained on in the epoch in progress
    epoch_seconds: float = 0.0
    finished: bool = False
    history: dict = field(default_factory=lambda: {"step": [], "loss": [], "lr": [], "epoch": [], "dev_wer": [],
                                                   "dev_cer": []})


def lr_factor(progress: float, step: int, warmup: int, final_ratio: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay from 1 to `final_ratio` as progress goes 0 → 1."""
    if step < warmup:
        return (step + 1) / warmup
    p = min(max(progress, 0.0), 1.0)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def ctc_loss(log_probs: torch.Tensor, out_lens: torch.Tensor, targets: torch.Tensor,
             target_lens: torch.Tensor, denominator: float | None = None) -> torch.Tensor:
    """Summed CTC loss divided by `denominator` (default: the batch size); log_probs (B, T, V), run in fp32."""
    loss = torch.nn.functional.ctc_loss(log_probs.float().transpose(0, 1), targets, out_lens, target_lens,
                                        blank=0, reduction="sum", zero_infinity=True)
    return loss / (denominator if denominator is not None else log_probs.shape[0])


SUMMARY = "training.json"


def write_summary(exp: Path, cfg: Config, state: TrainState, last_epoch: int, stopped: str) -> None:
    """exp/training.json: how far training went, read by `asr score --results` for RESULTS.md."""
    import json

    summary = {"epochs_planned": cfg.train.epochs, "last_epoch": last_epoch, "steps": state.step,
               "best_epoch": state.best_epoch, "training_seconds": round(state.elapsed, 1),
               "stopped_early": stopped or None}
    with atomic_path(exp / SUMMARY) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")


def _setup_logging(exp: Path, main: bool) -> None:
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        log.removeHandler(h)
    if main:  # under torchrun only rank 0 writes the log
        handler = logging.FileHandler(exp / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(handler)
    else:
        log.addHandler(logging.NullHandler())
    log.propagate = False


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict:
    """Every random generator training draws from (augmentation, dropout, SpecAugment), as saveable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                    gauss], "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _config_changes(old: dict, new: dict) -> list[str]:
    changes = []
    for section, values in new.items():
        for key, value in values.items():
            before = old.get(section, {}).get(key)
            if before != value and f"{section}.{key}" not in RESUMABLE:
                changes.append(f"{section}.{key}: {before!r} -> {value!r}")
    return changes


def read_resume(exp: Path, cfg: Config) -> dict | None:
    """The resume checkpoint of an experiment folder, or None; refuses one written with another config."""
    path = exp / RESUME
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"{path}: unreadable resume checkpoint ({type(exc).__name__}: {exc}); delete it to "
                           "start over") from None
    changes = _config_changes(ckpt["config"], to_dict(cfg))
    if changes:
        raise ConfigError(f"{exp} holds a run with another configuration ({'; '.join(changes)}); use another "
                          f"train.exp_dir, or delete {path} to start over")
    return ckpt


def data_fingerprint(utts) -> dict:
    """What identifies a training set for resuming: its size and a digest of every utterance's id, audio path,
    duration and text (the audio itself is not read)."""
    digest = hashlib.sha256()
    for u in utts:
        digest.update(f"{u.id}\t{u.audio}\t{u.duration:.4f}\t{u.text}\n".encode())
    return {"utterances": len(utts), "sha256": digest.hexdigest()}


def _load_train_utts(cfg: Config):
    utts = read_manifest(cfg.data.train)
    kept = [u for u in utts if u.duration <= cfg.data.max_duration]
    if len(kept) < len(utts):
        log.warning("skipped %d training utterances longer than %.1f s", len(utts) - len(kept), cfg.data.max_duration)
    fits = [u for u in kept if frame_count(u.duration, cfg.features.hop_ms) <= cfg.train.max_batch_frames]
    if len(fits) < len(kept):
        log.warning("skipped %d training utterances longer than train.max_batch_frames=%d frames",
                    len(kept) - len(fits), cfg.train.max_batch_frames)
    if not fits:
        raise ValueError(f"{cfg.data.train}: no training utterance fits data.max_duration and "
                         "train.max_batch_frames")
    return fits


def evaluate(model: AcousticModel, ds: SpeechDataset, tokenizer, device: torch.device,
             batch_size: int = 32) -> tuple[float, float]:
    """Greedy WER and CER (percent) of `model` on a dataset."""
    model.eval()
    refs, hyps = [], []
    for idx, log_probs, out_lens in batched_log_probs(model, ds, device, batch_size):
        hyps += [tokenizer.decode(ids) for ids in greedy_ids(log_probs, out_lens)]
        refs += [ds.utts[i].text for i in idx]
    model.train()
    score = compute(refs, hyps, allow_empty=True)  # a keyword corpus's silence clips have no words
    return score.wer, score.cer


def plot_curves(history: dict, out: Path) -> None:
    """Training loss and learning rate per step, dev WER/CER per epoch, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(history["step"], history["loss"], color="tab:blue", lw=1)
    ax1.set_xlabel("step")
    ax1.set_ylabel("CTC loss per utterance", color="tab:blue")
    ax1.set_yscale("log")
    lr_ax = ax1.twinx()
    lr_ax.plot(history["step"], history["lr"], color="tab:gray", lw=1, ls="--")
    lr_ax.set_ylabel("learning rate", color="tab:gray")
    if history["epoch"]:
        ax2.plot(history["epoch"], history["dev_wer"], marker="o", label="dev WER")
        ax2.plot(history["epoch"], history["dev_cer"], marker="o", label="dev CER")
        ax2.legend()
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("%")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _device(cfg: Config) -> torch.device:
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is available")
    if cfg.train.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.train.device)


def loader_workers(cfg: Config, device: torch.device) -> int:
    """DataLoader worker processes: data.num_workers, or with -1 four on CUDA and none on a CPU (where the
    training step already uses every core)."""
    if cfg.data.num_workers >= 0:
        return cfg.data.num_workers
    return 4 if device.type == "cuda" else 0


def train(cfg: Config, progress: bool = True) -> Path:
    """Train a model as configured; returns the path of the best model bundle (`EXP/model.pt`).

    An experiment folder holding a resume checkpoint (`EXP/resume.pt`) continues where it stopped, with
    bitwise the same result as an uninterrupted run. Under `torchrun` every process is one data-parallel rank."""
    d = distributed.from_env()
    device = distributed.init(d, _device(cfg))
    try:
        return _train(cfg, d, device, progress and d.main)
    finally:
        distributed.shutdown(d)


# ---------------------------------------------------------------- set-up


@dataclass
class Run:
    """What the training loop works with: built once by `setup`, then changed only through `state`."""
    cfg: Config
    d: distributed.Dist
    device: torch.device
    exp: Path
    tokenizer: object
    mean: torch.Tensor
    std: torch.Tensor
    train_set: SpeechDataset
    dev_set: SpeechDataset | None
    lengths: list[int]  # frames of every training utterance, for batching
    model: AcousticModel
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    optim: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    sampler: EpochSampler
    loader: object  # torch DataLoader over train_set, batched by sampler
    state: TrainState
    writer: object = None  # TensorBoard SummaryWriter (rank 0)
    steps_per_epoch: int = 0
    last_plot: float = -math.inf
    fingerprint: dict = field(default_factory=dict)  # of the training data (`data_fingerprint`)


def _tokenizer(cfg: Config, resume: dict | None, train_utts):
    if resume is not None:
        return tokenizer_from_state(resume["tokenizer"])
    if cfg.tokenizer.file:
        return load_tokenizer(cfg.tokenizer.file)
    return build_tokenizer(cfg.tokenizer.kind, [u.text for u in train_utts], cfg.tokenizer.vocab_size,
                           cfg.tokenizer.double_letters)


def _datasets(cfg: Config, d: distributed.Dist, resume: dict | None, tokenizer, train_utts, progress: bool):
    """(training set, dev set or None, CMVN mean, std): training features from the feature cache when
    configured; statistics from the resume checkpoint, data.cmvn, or computed over the training set."""
    store = None
    if cfg.data.feature_cache:
        from asr.featcache import FeatureCache

        store = FeatureCache(cfg.data.feature_cache)
        store.check(cfg.features, cfg.features.speed_perturb or (1.0,), train_utts)
    train_set = SpeechDataset(train_utts, tokenizer, cfg.features, train=True,
                              cache=cfg.data.cache_features and store is None, store=store)
    if resume is not None:
        mean, std = resume["cmvn"]["mean"], resume["cmvn"]["std"]
    elif cfg.data.cmvn:
        mean, std = load_cmvn(cfg.data.cmvn, cfg.features.n_mels)
    else:
        mean, std = train_set.compute_cmvn(progress)
    train_set.set_cmvn(mean, std)
    dev_set = None
    if cfg.data.dev and d.main:
        dev_set = SpeechDataset(read_manifest(cfg.data.dev), tokenizer, cfg.features, cache=cfg.data.cache_features)
        dev_set.set_cmvn(mean, std)
    return train_set, dev_set, mean, std


def setup(cfg: Config, d: distributed.Dist, device: torch.device, resume: dict | None, progress: bool) -> Run:
    """Data, tokenizer, statistics, model, optimiser, mixed precision, loader and logging; restored from
    `resume` when given."""
    exp = Path(cfg.train.exp_dir)
    _seed_everything(cfg.train.seed)
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    flush_denormals()
    train_utts = _load_train_utts(cfg)
    tokenizer = _tokenizer(cfg, resume, train_utts)
    train_set, dev_set, mean, std = _datasets(cfg, d, resume, tokenizer, train_utts, progress)
    model = AcousticModel(cfg.model, cfg.features.n_mels, tokenizer.vocab_size).to(device)
    # fused AdamW: one kernel over all parameters (CPU and CUDA); ~40 % less optimiser time than the loop
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, fused=True)
    # mixed precision: bf16 autocast (no scaler needed), or fp16 autocast with a gradient scaler (CUDA);
    # the CTC loss always runs in fp32 (ctc_loss casts), as do the optimiser and the master weights
    if cfg.train.precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision=fp16 needs CUDA; use bf16 on CPU")
    if cfg.train.precision == "bf16" and (problem := bf16_problem(cfg.model.rnn_type, device)):
        raise ConfigError(f"train.precision=bf16: this {device.type} cannot run {cfg.model.rnn_type} layers in bf16 "
                          f"({problem}); use train.precision=fp32")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.train.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16")
    sampler = EpochSampler(d.rank, d.world, cfg.train.seed)
    loader = training_loader(train_set, sampler, loader_workers(cfg, device), pin_memory=device.type == "cuda")
    run = Run(cfg, d, device, exp, tokenizer, mean, std, train_set, dev_set,
              [train_set.frames(i) for i in range(len(train_set))], model, model, optim, scaler, amp_dtype,
              sampler, loader, TrainState(), fingerprint=data_fingerprint(train_set.utts))
    if resume is not None:
        restore(run, resume)
    elif d.rank > 0:  # other ranks: their own dropout draws (weights come from rank 0)
        _seed_everything(cfg.train.seed + d.rank)
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel

        run.net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    run.steps_per_epoch = len(make_batches(run.lengths, cfg.train.batch_size, cfg.train.max_batch_frames,
                                           shuffle=False, shards=d.world))
    if cfg.train.tensorboard and d.main:
        from torch.utils.tensorboard import SummaryWriter

        run.writer = SummaryWriter(str(exp / "tensorboard"), purge_step=run.state.step if resume is not None else None)
    log.info("device %s x %d rank(s), %d training utterances (%.1f min), %d parameters, vocabulary %d, "
             "%d loader worker(s)%s", device.type, d.world, len(train_set),
             sum(u.duration for u in train_set.utts) / 60, sum(p.numel() for p in model.parameters()),
             tokenizer.vocab_size, loader.num_workers,
             f", features from {train_set.store.folder}" if train_set.store is not None else "")
    return run


# ---------------------------------------------------------------- checkpoint and resume


def save_resume(run: Run) -> None:
    """Atomic resume checkpoint (all ranks take part: rank 0 collects every rank's RNG states)."""
    rngs = distributed.gather_objects(rng_state(run.device), run.d)
    if run.d.main:
        ckpt = {"format": "asr-resume", "config": to_dict(run.cfg), "state": asdict(run.state),
                "model": run.model.state_dict(), "optimizer": run.optim.state_dict(),
                "scaler": run.scaler.state_dict(), "rng": rngs, "tokenizer": run.tokenizer.state(),
                "cmvn": {"mean": run.mean, "std": run.std}, "data": run.fingerprint}
        with atomic_path(run.exp / RESUME) as tmp:
            torch.save(ckpt, tmp)


def restore(run: Run, resume: dict) -> None:
    """Weights, optimiser, scaler, progress and random generators from a resume checkpoint; refused when the
    training data is not what the interrupted run trained on."""
    then, now = resume.get("data"), run.fingerprint
    if then is not None and then != now:
        raise ConfigError(f"{run.cfg.data.train}: the training data changed since the interrupted run in {run.exp} "
                          f"({then['utterances']} utterances then, {now['utterances']} now, or other contents); "
                          f"train in another train.exp_dir, or delete {run.exp / RESUME} to start over")
    run.model.load_state_dict(resume["model"])
    run.optim.load_state_dict(resume["optimizer"])
    run.scaler.load_state_dict(resume["scaler"])
    run.state = TrainState(**resume["state"])
    rngs = resume["rng"]
    if len(rngs) == run.d.world:
        set_rng_state(rngs[run.d.rank], run.device)
    else:
        log.warning("resuming with %d ranks instead of %d: random streams restart from the seed",
                    run.d.world, len(rngs))
        _seed_everything(run.cfg.train.seed + 7919 * run.state.step + run.d.rank)
    log.info("resuming at epoch %d, batch %d (step %d, %.1f s trained)", run.state.epoch, run.state.batch_in_epoch,
             run.state.step, run.state.elapsed)


def save_epoch_checkpoints(run: Run, epoch: int, wer: float | None) -> None:
    """last.pt, checkpoints/epoch-NNNN.pt (rotated), and best.pt when the dev WER did not get worse."""
    cfg, exp, state = run.cfg, run.exp, run.state
    run_state = {"epoch": epoch, "step": state.step, "dev_wer": wer if wer is not None else -1.0}
    ckpt = make_bundle(run.model, cfg, run.tokenizer, run.mean, run.std, train_state=run_state)
    save_bundle(ckpt, exp / "last.pt")
    if cfg.train.keep_checkpoints > 0:
        save_bundle(ckpt, exp / "checkpoints" / f"epoch-{epoch:04d}.pt")
        for old in sorted((exp / "checkpoints").glob("epoch-*.pt"))[:-cfg.train.keep_checkpoints]:
            old.unlink()
    if wer is None or wer <= state.best_wer:
        state.best_wer = wer if wer is not None else state.best_wer
        state.best_epoch = epoch
        save_bundle(ckpt, exp / "best.pt")


# ---------------------------------------------------------------- one step


def _autocast(run: Run):
    if run.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(run.device.type, dtype=run.amp_dtype)


def train_step(run: Run, batch, weight: float, denominator: float, lr: float) -> tuple[torch.Tensor, float | None]:
    """One optimiser step on this rank's part of a global batch, the same path for full BPTT, truncated BPTT
    (chunk-wise backward) and data parallelism: the loss is the global batch's summed CTC loss over its size
    (`denominator` is that size over the ranks, as their gradients are averaged), times `weight` (0 for a
    stand-in). Returns (this rank's loss, gradient norm before clipping or None)."""
    cfg, model, scaler = run.cfg, run.model, run.scaler
    for group in run.optim.param_groups:
        group["lr"] = lr
    feats, feat_lens = batch.feats.to(run.device), batch.feat_lens.to(run.device)
    targets, target_lens = batch.targets.to(run.device), batch.target_lens.to(run.device)

    def loss_fn(lp, ol):
        return ctc_loss(lp, ol, targets, target_lens, denominator) * weight

    run.optim.zero_grad(set_to_none=True)
    with _autocast(run):
        if cfg.model.tbptt_chunk > 0:  # truncated BPTT: activation memory bounded by the chunk
            loss, _ = chunkwise_backward(model, feats, feat_lens, lambda lp, ol: scaler.scale(loss_fn(lp, ol)))
            loss = loss / scaler.get_scale() if scaler.is_enabled() else loss
            if run.d.enabled:
                distributed.all_reduce_grads(model.parameters(), run.d.world)
        else:
            log_probs, out_lens = run.net(feats, feat_lens)
            loss = loss_fn(log_probs, out_lens)
            scaler.scale(loss).backward()
    scaler.unscale_(run.optim)
    grad_norm = None
    if cfg.train.grad_clip > 0:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip))
    scaler.step(run.optim)
    scaler.update()
    return loss.detach(), grad_norm


def _log_step(run: Run, epoch: int, loss_value: float, grad_norm: float | None, lr: float, speed: float) -> None:
    state, writer = run.state, run.writer
    log.info("epoch %d step %d loss %.4f grad_norm %s lr %.2e audio/s %.1fx", epoch, state.step, loss_value,
             f"{grad_norm:.2f}" if grad_norm is not None else "-", lr, speed)
    state.history["step"].append(state.step)
    state.history["loss"].append(loss_value)
    state.history["lr"].append(lr)
    if writer is not None:
        writer.add_scalar("train/loss", loss_value, state.step)
        writer.add_scalar("train/lr", lr, state.step)
        if grad_norm is not None:
            writer.add_scalar("train/grad_norm", grad_norm, state.step)
        writer.add_scalar("train/frames_per_second", speed * 1000 / run.cfg.features.hop_ms, state.step)


# ---------------------------------------------------------------- one epoch


def run_epoch(run: Run, epoch: int, start: float, progress: bool) -> tuple[bool, bool, torch.Tensor | None]:
    """Train the rest of epoch `epoch` (from state.batch_in_epoch on). Returns (out of time, the epoch ran
    from its first batch in this session, per-utterance use counts across ranks or None)."""
    cfg, d, state = run.cfg, run.d, run.state
    bsz, max_frames = cfg.train.batch_size, cfg.train.max_batch_frames
    batches = epoch_batches(run.lengths, bsz, max_frames, epoch, seed=cfg.train.seed,
                            sortagrad=cfg.train.sortagrad, shards=d.world)
    fresh_epoch = state.batch_in_epoch == 0
    if fresh_epoch:
        state.epoch_loss = state.epoch_audio = state.epoch_seconds = state.epoch_utts = 0.0
    seen = torch.zeros(len(run.train_set), dtype=torch.float64, device=run.device) if d.enabled else None
    loss_sum = torch.tensor(state.epoch_loss, dtype=torch.float64, device=run.device)
    total_steps = run.steps_per_epoch * cfg.train.epochs
    if cfg.train.max_steps:
        total_steps = min(total_steps, cfg.train.max_steps)
    budget = cfg.train.max_minutes * 60
    bar = tqdm(total=len(batches), initial=state.batch_in_epoch, desc=f"epoch {epoch}/{cfg.train.epochs}",
               unit="batch", disable=not progress)
    segment_start, segment_seconds = time.monotonic(), state.epoch_seconds
    run.sampler.set_epoch(epoch, batches, state.batch_in_epoch)
    out_of_time = False
    for b, batch in zip(range(state.batch_in_epoch, len(batches)), run.loader):
        if state.step >= total_steps:  # train.max_steps reached
            out_of_time = True
            break
        elapsed = time.monotonic() - start
        if budget > 0:
            elapsed = distributed.all_reduce([elapsed], run.device, d, op="max")[0]  # one decision for all
            if elapsed >= budget:
                out_of_time = True
                break
        progress_frac = state.step / max(total_steps, 1)
        if budget > 0:
            progress_frac = max(progress_frac, elapsed / budget)
        lr = cfg.train.lr * lr_factor(progress_frac, state.step, cfg.train.warmup_steps, cfg.train.final_lr_ratio)
        idx, weight = run.sampler.shard(b)
        if seen is not None and weight:
            seen[idx] += 1
        denominator = len(batches[b]) / d.world  # ranks' gradients are averaged: loss = global sum / size
        loss, grad_norm = train_step(run, batch, weight, denominator, lr)
        state.step += 1
        state.batch_in_epoch = b + 1
        loss_sum += loss.double() * denominator
        state.epoch_audio += float(batch.feat_lens.sum()) * cfg.features.hop_ms / 1000 * weight
        state.epoch_utts += len(idx) * weight
        bar.update(1)
        if state.step % cfg.train.log_every == 0 or b == len(batches) - 1:
            seconds = segment_seconds + time.monotonic() - segment_start
            speed = state.epoch_audio * d.world / max(seconds, 1e-6)
            loss_value = float(loss) * denominator / max(len(idx), 1)
            bar.set_postfix(loss=f"{loss_value:.3f}", rtf=f"{speed:.0f}x", lr=f"{lr:.1e}")
            _log_step(run, epoch, loss_value, grad_norm, lr, speed)
        if cfg.train.checkpoint_every and state.step % cfg.train.checkpoint_every == 0 and b + 1 < len(batches):
            state.epoch_loss = float(loss_sum)
            state.epoch_seconds = segment_seconds + time.monotonic() - segment_start
            state.elapsed = time.monotonic() - start
            save_resume(run)
    bar.close()
    state.epoch_loss = float(loss_sum)
    state.epoch_seconds = segment_seconds + time.monotonic() - segment_start
    state.elapsed = time.monotonic() - start
    return out_of_time, fresh_epoch, seen


def end_of_epoch(run: Run, epoch: int, out_of_time: bool, fresh_epoch: bool, seen, progress: bool) -> None:
    """The epoch's summary line (loss over the utterances trained on, speed, the seen-once check across
    ranks), dev WER/CER, epoch checkpoints and the curves (rank 0)."""
    cfg, d, state = run.cfg, run.d, run.state
    total_loss, total_audio, total_utts = distributed.all_reduce(
        [state.epoch_loss, state.epoch_audio, state.epoch_utts], run.device, d)
    msg = (f"epoch {epoch} done: {int(total_utts)} of {len(run.train_set)} utterances, mean loss "
           f"{total_loss / max(total_utts, 1):.4f}, {state.epoch_seconds:.1f} s "
           f"({total_audio / max(state.epoch_seconds, 1e-6):.0f}x real time)")
    if seen is not None and fresh_epoch and not out_of_time:
        torch.distributed.all_reduce(seen)
        if not bool((seen == 1).all()):
            raise RuntimeError(f"epoch {epoch}: {int((seen != 1).sum())} utterances were not trained on exactly "
                               "once across ranks")
        msg += f", each seen exactly once across {d.world} ranks"
    if not d.main:
        return
    wer = None
    if run.dev_set is not None:
        wer, cer = evaluate(run.model, run.dev_set, run.tokenizer, run.device)
        msg += f", dev WER {wer:.2f}% CER {cer:.2f}%"
        state.history["epoch"].append(epoch)
        state.history["dev_wer"].append(wer)
        state.history["dev_cer"].append(cer)
        if run.writer is not None:
            run.writer.add_scalar("dev/wer", wer, state.step)
            run.writer.add_scalar("dev/cer", cer, state.step)
    log.info(msg)
    if progress:
        tqdm.write(msg)
    save_epoch_checkpoints(run, epoch, wer)
    if run.writer is not None:
        run.writer.flush()
        # the PNG costs ~0.25 s to draw: after every epoch, but at most every 30 s for short epochs
        if out_of_time or epoch == cfg.train.epochs or time.monotonic() - run.last_plot >= 30:
            plot_curves(state.history, run.exp / "curves.png")
            run.last_plot = time.monotonic()


# ---------------------------------------------------------------- the run


def _train(cfg: Config, d: distributed.Dist, device: torch.device, progress: bool) -> Path:
    """One run at a time per experiment folder: rank 0 holds its lock (another run gets a clear error; the
    lock of a killed run is taken over). Temporary files that a killed run left behind are removed."""
    exp = Path(cfg.train.exp_dir)
    exp.mkdir(parents=True, exist_ok=True)
    with folder_lock(exp, "training run") if d.main else contextlib.nullcontext() as previous:
        if d.main:
            leftovers = [p for p in (*exp.glob(".*.tmp*"), *exp.glob("checkpoints/.*.tmp*")) if p.is_file()]
            for p in leftovers:
                p.unlink()
        _setup_logging(exp, d.main)
        if d.main and (previous or leftovers):
            log.info("%s: taking over from an earlier run that stopped (PID %s); removed %d temporary file(s)",
                     exp, previous or "unknown", len(leftovers))
        return _train_locked(cfg, d, device, progress, exp)


def _train_locked(cfg: Config, d: distributed.Dist, device: torch.device, progress: bool, exp: Path) -> Path:
    resume = read_resume(exp, cfg)
    if d.main:
        save_config(cfg, exp / "config.yaml")
    bundle_path = exp / "model.pt"
    if resume is not None and resume["state"]["finished"] and bundle_path.is_file():
        msg = f"{exp}: training already finished (epoch {resume['state']['epoch'] - 1}); nothing to do"
        log.info(msg)
        if progress:
            tqdm.write(msg)
        return bundle_path
    run = setup(cfg, d, device, resume, progress)
    state = run.state
    start = time.monotonic() - state.elapsed
    for epoch in range(state.epoch, cfg.train.epochs + 1):
        state.epoch = epoch
        out_of_time, fresh_epoch, seen = run_epoch(run, epoch, start, progress)
        end_of_epoch(run, epoch, out_of_time, fresh_epoch, seen, progress)
        state.epoch, state.batch_in_epoch = epoch + 1, 0
        state.finished = out_of_time or epoch == cfg.train.epochs
        if state.finished and d.main:
            save_bundle(read_bundle(exp / "best.pt"), bundle_path)
        save_resume(run)
        stopped = ""
        if out_of_time:
            by_steps = cfg.train.max_steps and state.step >= cfg.train.max_steps
            budget = (f"train.max_steps={cfg.train.max_steps}" if by_steps
                      else f"train.max_minutes={cfg.train.max_minutes:g}")
            stopped = f"{budget} reached in epoch {epoch} of {cfg.train.epochs} (step {state.step})"
            msg = f"STOPPED EARLY: {stopped}; the model is the best of what was trained"
            log.warning(msg)
            if progress:
                tqdm.write(msg)
        if state.finished and d.main:
            write_summary(exp, cfg, state, epoch, stopped)
        if out_of_time:
            break
    if run.writer is not None:
        run.writer.close()
    if d.main and not bundle_path.is_file() and (exp / "best.pt").is_file():
        save_bundle(read_bundle(exp / "best.pt"), bundle_path)
    distributed.barrier(d)
    log.info("best epoch %d (dev WER %s); model bundle %s; training time %.1f s", state.best_epoch,
             f"{state.best_wer:.2f}%" if state.best_wer < math.inf else "n/a", bundle_path, state.elapsed)
    return bundle_path
