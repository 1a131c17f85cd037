"""Decoding: greedy CTC (best path, collapse repeats, drop blanks) over a manifest."""

from __future__ import annotations

from pathlib import Path

import torch

from asr.manifest import read_hypotheses, write_hypotheses  # noqa: F401  (the hypothesis file format)
from asr.text import BLANK


def collapse(best_path: list[int], prev: int = BLANK) -> tuple[list[int], int]:
    """CTC's collapse of a best path (one symbol id per frame): repeats merged, blanks dropped. `prev` is the
    symbol of the frame before the path, so that a path can be collapsed piece by piece (streaming).
    Returns (token ids, symbol of the path's last frame)."""
    ids = []
    for t in best_path:
        if t != prev and t != BLANK:
            ids.append(t)
        prev = t
    return ids, prev


def greedy_ids(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path per utterance: (B, T, V) log-probs and (B,) lengths → token-id lists."""
    best = log_probs.argmax(dim=-1).cpu()  # (B, T)
    return [collapse(row[:n])[0] for row, n in zip(best.tolist(), lengths.tolist())]


def batched_log_probs(model, ds, device, batch_size: int = 16):
    """Run `model` over a dataset in length-sorted batches without gradients; yields (dataset indices,
    log-probs (B, T, V), output lengths (B,)) per batch."""
    from asr.data import iterate_batches, make_batches

    batches = make_batches([ds.frames(i) for i in range(len(ds))], batch_size, 10**9, shuffle=False)
    with torch.no_grad():
        for idx, b in zip(batches, iterate_batches(ds, batches)):
            log_probs, out_lens = model(b.feats.to(device), b.feat_lens.to(device))
            yield idx, log_probs, out_lens


def best_choices(log_probs: torch.Tensor, lengths: torch.Tensor, choices: list[list[int]]) -> list[int]:
    """Closed-set decoding: for each utterance, the index of the allowed token sequence with the highest
    CTC likelihood (exact, by the CTC forward algorithm, not a beam). log_probs (B, T, V), lengths (B,)."""
    if not choices or any(not c for c in choices):
        raise ValueError("every choice must be a non-empty token sequence")
    b, t, _ = log_probs.shape
    c = len(choices)
    lp = log_probs.float().transpose(0, 1)  # (T, B, V)
    lp = lp.unsqueeze(2).expand(t, b, c, lp.shape[-1]).reshape(t, b * c, lp.shape[-1])
    targets = torch.tensor([tok for _ in range(b) for ch in choices for tok in ch], dtype=torch.long)
    target_lens = torch.tensor([len(ch) for ch in choices] * b, dtype=torch.long)
    input_lens = lengths.cpu().long().repeat_interleave(c)
    nll = torch.nn.functional.ctc_loss(lp.cpu(), targets, input_lens, target_lens, blank=BLANK, reduction="none",
                                       zero_infinity=False)  # impossible alignments are +inf
    return nll.view(b, c).argmin(dim=1).tolist()


def read_choices(path: str | Path) -> list[str]:
    """Allowed transcripts for closed-set decoding, one per line."""
    from asr.manifest import ManifestError

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: choices file not found")
    choices = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not choices:
        raise ManifestError(f"{path}: choices file is empty")
    return choices


def decode_manifest(recognizer, manifest: str | Path, out: str | Path, *, batch_size: int = 16,
                    progress: bool = True, choices: list[str] | None = None) -> dict[str, str]:
    """Decode every utterance of a manifest with a loaded Recognizer (greedy, or the most likely of
    `choices` when given); write hypotheses to `out`."""
    from tqdm import tqdm

    from asr.manifest import read_manifest

    utts = read_manifest(manifest)
    ds = recognizer.dataset(utts)
    hyps: dict[str, str] = {}
    bar = tqdm(total=len(ds), desc="decode", unit="utt", disable=not progress)
    for idx, log_probs, out_lens in batched_log_probs(recognizer.model, ds, recognizer.device, batch_size):
        hyps.update(zip((utts[i].id for i in idx), recognizer.decode_log_probs(log_probs, out_lens, choices)))
        bar.update(len(idx))
    bar.close()
    ordered = {u.id: hyps[u.id] for u in utts}
    write_hypotheses(ordered, out)
    return ordered
