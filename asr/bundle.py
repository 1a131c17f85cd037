"""Model bundle: one file with weights, resolved config, tokenizer, CMVN statistics and a format version."""

from __future__ import annotations

from pathlib import Path

import torch

from asr.config import Config, from_dict, to_dict
from asr.features import LogMel, apply_cmvn, trim_silence, utterance_mean_norm
from asr.fileio import atomic_path
from asr.model import AcousticModel
from asr.text import tokenizer_from_state

FORMAT = "asr-bundle"
VERSION = 1


class BundleError(ValueError):
    """A model file that cannot be loaded; the message names the file."""


def make_bundle(model: AcousticModel, cfg: Config, tokenizer, mean: torch.Tensor, std: torch.Tensor,
                **extra) -> dict:
    """Everything needed to run the model, as plain types and tensors (loadable with weights_only=True)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "version": VERSION, "config": to_dict(cfg), "tokenizer": tokenizer.state(),
            "cmvn": {"mean": mean.cpu(), "std": std.cpu()}, "model": state, **extra}


def save_bundle(bundle: dict, path: str | Path) -> None:
    """Atomic write: a temporary file in the same folder, then rename."""
    with atomic_path(path) as tmp:
        torch.save(bundle, tmp)


def read_bundle(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: model file not found")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BundleError(f"{path}: not a readable asr model bundle ({type(exc).__name__}: {exc})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"{path}: not an asr model bundle")
    if bundle.get("version") != VERSION:
        raise BundleError(f"{path}: bundle format version {bundle.get('version')} is not supported "
                          f"(this asr reads version {VERSION})")
    return bundle


class Recognizer:
    """A loaded model with its tokenizer and feature normalisation; greedy CTC decoding."""

    def __init__(self, bundle: dict, device: str | torch.device = "cpu"):
        self.cfg: Config = from_dict(bundle["config"])
        self.tokenizer = tokenizer_from_state(bundle["tokenizer"])
        self.mean = bundle["cmvn"]["mean"]
        self.std = bundle["cmvn"]["std"]
        self.device = torch.device(device)
        self.model = AcousticModel(self.cfg.model, self.cfg.features.n_mels, self.tokenizer.vocab_size)
        self.model.load_state_dict(bundle["model"])
        self.model.to(self.device).eval()
        self.logmel = LogMel(self.cfg.features)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Recognizer:
        return cls(read_bundle(path), device)

    def dataset(self, utts):
        """An evaluation dataset (no augmentation, no caching) normalised with this model's statistics."""
        from asr.data import SpeechDataset

        ds = SpeechDataset(utts, self.tokenizer, self.cfg.features, train=False, cache=False)
        ds.set_cmvn(self.mean, self.std)
        return ds

    @torch.no_grad()
    def decode_features(self, feats: torch.Tensor, lengths: torch.Tensor,
                        choices: list[str] | None = None) -> list[str]:
        """Normalised, padded features (B, T, F) → one text per utterance: greedy CTC, or with `choices`
        the allowed transcript of highest CTC likelihood."""
        from asr.decode import best_choices, greedy_ids

        log_probs, out_lens = self.model(feats.to(self.device), lengths.to(self.device))
        if choices:
            best = best_choices(log_probs, out_lens, [self.tokenizer.encode(c) for c in choices])
            return [choices[i] for i in best]
        return [self.tokenizer.decode(ids) for ids in greedy_ids(log_probs, out_lens)]

    @torch.no_grad()
    def transcribe_wave(self, wav: torch.Tensor) -> str:
        """Mono 16 kHz waveform (N,) → text."""
        fc = self.cfg.features
        feats = utterance_mean_norm(self.logmel(trim_silence(wav, fc.trim_db)), fc.utterance_mean_norm)
        feats = apply_cmvn(feats, self.mean, self.std)
        return self.decode_features(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))[0]


def package(exp: str | Path, out: str | Path) -> Path:
    """The deliverable of an experiment: its best model bundle, checked by loading it, with the experiment's
    RESULTS.json rows (if scored) and its name attached, written atomically to `out`."""
    import json

    exp = Path(exp)
    bundle = read_bundle(exp / "model.pt")
    Recognizer(bundle)  # must build and load
    results = exp / "RESULTS.json"
    bundle["results"] = json.loads(results.read_text()) if results.is_file() else []
    bundle["experiment"] = str(exp)
    save_bundle(bundle, out)
    return Path(out)
