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


def choice_scores(log_probs: torch.Tensor, lengths: torch.Tensor, choices: list[list[int]]) -> torch.Tensor:
    """Closed-set scores: the CTC log-likelihood (B, C) of every allowed token sequence for every utterance
    (exact, by the CTC forward algorithm, not a beam; -inf where the sequence cannot fit). log_probs (B, T, V),
    lengths (B,). An empty choice is the all-blank path (no speech)."""
    if not choices:
        raise ValueError("closed-set decoding needs at least one choice")
    b, t, _ = log_probs.shape
    c = len(choices)
    lp = log_probs.float().transpose(0, 1)  # (T, B, V)
    lp = lp.unsqueeze(2).expand(t, b, c, lp.shape[-1]).reshape(t, b * c, lp.shape[-1])
    targets = torch.tensor([tok for _ in range(b) for ch in choices for tok in ch], dtype=torch.long)
    target_lens = torch.tensor([len(ch) for ch in choices] * b, dtype=torch.long)
    input_lens = lengths.cpu().long().repeat_interleave(c)
    nll = torch.nn.functional.ctc_loss(lp.cpu(), targets, input_lens, target_lens, blank=BLANK, reduction="none",
                                       zero_infinity=False)  # impossible alignments are +inf
    return -nll.view(b, c)


def best_choices(log_probs: torch.Tensor, lengths: torch.Tensor, choices: list[list[int]]) -> list[int]:
    """Closed-set decoding: for each utterance, the index of the allowed token sequence with the highest
    CTC likelihood (`choice_scores`)."""
    return choice_scores(log_probs, lengths, choices).argmax(dim=1).tolist()


def rank_choices(scores: torch.Tensor, choices: list[str], n: int) -> list[list[tuple[str, float]]]:
    """The `n` best of `choices` per utterance from scores (B, C), best first, with scores rounded to 3 decimals."""
    top = scores.topk(min(n, len(choices)), dim=1)
    return [[(choices[int(i)], round(float(v), 3)) for v, i in zip(vals, idx)]
            for vals, idx in zip(top.values, top.indices)]


ENSEMBLE_NEEDS_CHOICES = "several --model and --warps need --choices: they average closed-set posteriors"


def ensemble_posteriors(recognizers, utts, choices: list[str], warps=(1.0,), batch_size: int = 16,
                        bar=None) -> torch.Tensor:
    """Closed-set ensemble: every utterance's posterior over `choices` (the softmax of `choice_scores`),
    averaged over every model in `recognizers` and every test-time `freq_warp` factor in `warps`; (N, C).
    Averaging sequence posteriors, not frame posteriors, needs no agreement between the models' CTC alignments
    (their spikes fall on different frames), so models of any shape, tokenizer or frame rate combine. A pass
    (model and warp) in which no choice fits an utterance (too few frames) is left out of its average; a row of
    zeros means that no pass fitted any choice."""
    total = torch.zeros(len(utts), len(choices))
    passes = torch.zeros(len(utts), 1)
    for rec in recognizers:
        ds = rec.dataset(utts)
        ids = [rec.tokenizer.encode(c) for c in choices]
        for warp in warps:
            ds.warp = warp
            for idx, log_probs, out_lens in batched_log_probs(rec.model, ds, rec.device, batch_size):
                scores = choice_scores(log_probs, out_lens, ids)
                fits = torch.isfinite(scores).any(dim=1, keepdim=True)
                post = torch.where(fits, scores, torch.zeros_like(scores)).log_softmax(dim=1).exp()
                total[idx] += post * fits
                passes[idx] += fits.float()
                if bar is not None:
                    bar.update(len(idx))
    return total / passes.clamp_min(1)


def read_warps(text: str) -> list[float]:
    """`--warps` "0.95,1,1.05": test-time `freq_warp` factors (each 0.5-2)."""
    try:
        warps = [float(w) for w in text.split(",")]
    except ValueError:
        raise ValueError(f"--warps {text!r}: give comma-separated numbers, e.g. 0.95,1,1.05,1.1") from None
    bad = [w for w in warps if not 0.5 <= w <= 2.0]
    if bad:
        raise ValueError(f"--warps {text!r}: {bad[0]} is outside 0.5-2 (1 is no warp)")
    return warps


def read_choices(path: str | Path, what: str = "choices file") -> list[str]:
    """Allowed transcripts for closed-set decoding (or any list of transcripts), one per line."""
    from asr.manifest import ManifestError

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: {what} not found")
    choices = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not choices:
        raise ManifestError(f"{path}: {what} is empty")
    return choices


def decode_manifest(recognizer, manifest: str | Path, out: str | Path, *, batch_size: int = 16,
                    progress: bool = True, choices: list[str] | None = None, nbest: int = 1,
                    ensemble: list | tuple = (), warps: list[float] | None = None) -> dict[str, str]:
    """Decode every utterance of a manifest with a loaded Recognizer (greedy, beam search once `use_beam`
    was called, or the most likely of `choices` when given); write hypotheses to `out`. With `nbest` > 1
    (beam search or choices) each line also lists up to that many distinct hypotheses, best first, with
    their scores (`nbest`: [{"text", "score"}]); `text` stays the best one. With `choices`, more models
    (`ensemble`, loaded Recognizers) and test-time `warps` average their posteriors (`ensemble_posteriors`);
    n-best scores are then log mean posteriors."""
    from tqdm import tqdm

    from asr.manifest import read_manifest

    if not (isinstance(nbest, int) and nbest >= 1):
        raise ValueError(f"--nbest must be a whole number of at least 1, not {nbest!r}")
    if nbest > 1 and recognizer.beam is None and not choices:
        raise ValueError(f"--nbest {nbest} needs beam search (--lm with --lexicon, or --beam-size alone) or "
                         "--choices: greedy decoding has one hypothesis")
    if (ensemble or warps) and not choices:
        raise ValueError(ENSEMBLE_NEEDS_CHOICES)
    utts = read_manifest(manifest)
    hyps: dict[str, str] = {}
    lists: dict[str, list] = {}
    if ensemble or warps:
        recs, warps = [recognizer, *ensemble], list(warps or [1.0])
        with tqdm(total=len(utts) * len(recs) * len(warps), desc="decode", unit="utt", disable=not progress) as bar:
            post = ensemble_posteriors(recs, utts, choices, warps, batch_size, bar)
        for u, ranked in zip(utts, rank_choices(post.clamp_min(1e-30).log(), choices, nbest)):
            hyps[u.id] = ranked[0][0]
            if nbest > 1:
                lists[u.id] = [{"text": text, "score": score} for text, score in ranked]
    else:
        ds = recognizer.dataset(utts)
        bar = tqdm(total=len(ds), desc="decode", unit="utt", disable=not progress)
        for idx, log_probs, out_lens in batched_log_probs(recognizer.model, ds, recognizer.device, batch_size):
            ids = [utts[i].id for i in idx]
            if nbest > 1:
                for uid, ranked in zip(ids, recognizer.nbest_log_probs(log_probs, out_lens, nbest, choices)):
                    lists[uid] = [{"text": text, "score": score} for text, score in ranked]
                    hyps[uid] = ranked[0][0] if ranked else ""
            else:
                hyps.update(zip(ids, recognizer.decode_log_probs(log_probs, out_lens, choices)))
            bar.update(len(idx))
        bar.close()
    ordered = {u.id: hyps[u.id] for u in utts}
    write_hypotheses(ordered, out, {u.id: {"nbest": lists[u.id]} for u in utts} if lists else None)
    return ordered
