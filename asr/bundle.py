"""Model bundle: one file with weights, resolved config, tokenizer, CMVN statistics and a format version."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from asr.config import Config, from_dict, to_dict
from asr.features import LogMel, apply_cmvn, trim_bounds, utterance_mean_norm
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

    def __init__(self, bundle: dict, device: str | torch.device = "cpu", model=None):
        self.cfg: Config = from_dict(bundle["config"])
        self.tokenizer = tokenizer_from_state(bundle["tokenizer"])
        self.mean = bundle["cmvn"]["mean"]
        self.std = bundle["cmvn"]["std"]
        self.device = torch.device(device)
        self.exported = bundle.get("export")  # None, or the format of an `asr export` file
        if model is None:
            model = AcousticModel(self.cfg.model, self.cfg.features.n_mels, self.tokenizer.vocab_size)
            model.load_state_dict(bundle["model"])
        self.model = model
        self.model.to(self.device).eval()
        self.logmel = LogMel(self.cfg.features)
        self.decoding: dict = dict(bundle.get("decoding", {}))  # beam-search defaults stored by `asr tune`
        self.beam = None  # a BeamDecoder (asr.beam) once use_beam() is called; greedy otherwise

    def use_beam(self, lexicon=None, lm=None, *, beam_size: int | None = None, lm_weight: float | None = None,
                 word_score: float | None = None) -> None:
        """Decode with beam search from now on; unset weights come from the bundle's tuned defaults."""
        from asr.beam import BeamDecoder, BeamOptions

        tuned = {**dataclasses.asdict(BeamOptions()), **self.decoding}
        opts = BeamOptions(beam_size=beam_size or tuned["beam_size"],
                           lm_weight=tuned["lm_weight"] if lm_weight is None else lm_weight,
                           word_score=tuned["word_score"] if word_score is None else word_score)
        self.beam = BeamDecoder(self.tokenizer, lexicon, lm, opts)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Recognizer:
        """A bundle (.pt) or a file written by `asr export` (TorchScript, int8 TorchScript, ONNX)."""
        from asr.export import load_exported

        path = Path(path)
        if path.is_file():
            exported = load_exported(path)
            if exported is not None:
                meta, model = exported
                return cls(meta, device, model=model)
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
        log_probs, out_lens = self.model(feats.to(self.device), lengths.to(self.device))
        return self.decode_log_probs(log_probs, out_lens, choices)

    @property
    def frame_seconds(self) -> float:
        """Duration of one model output frame."""
        return self.cfg.model.subsampling_factor * self.cfg.features.hop_ms / 1000

    def features(self, wav: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Mono 16 kHz waveform (N,) → normalised features (T, F) as in training, and the first sample kept
        by silence trimming (`features.trim_db`), which timestamps are measured from."""
        fc = self.cfg.features
        start, end = trim_bounds(wav, fc.trim_db)
        feats = utterance_mean_norm(self.logmel(wav[start:end]), fc.utterance_mean_norm)
        return apply_cmvn(feats, self.mean, self.std), start

    def decode_log_probs(self, log_probs: torch.Tensor, out_lens: torch.Tensor,
                         choices: list[str] | None = None) -> list[str]:
        """Greedy CTC, beam search once `use_beam` was called, or with `choices` the allowed transcript of
        highest CTC likelihood."""
        from asr.decode import best_choices, greedy_ids

        if choices:
            best = best_choices(log_probs, out_lens, [self.tokenizer.encode(c) for c in choices])
            return [choices[i] for i in best]
        if self.beam is not None:
            return self.beam.decode(log_probs, out_lens)
        return [self.tokenizer.decode(ids) for ids in greedy_ids(log_probs, out_lens)]

    @torch.no_grad()
    def transcribe_wave(self, wav: torch.Tensor) -> str:
        """Mono 16 kHz waveform (N,) → text."""
        feats, _ = self.features(wav)
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


def average_checkpoints(paths: list[str | Path], out: str | Path) -> dict:
    """Average the weights of several bundles of the same model into one bundle written to `out`.

    Floating-point tensors are averaged (in float64, then cast back); integer buffers are taken from the
    first. The first bundle's config, tokenizer and statistics are kept; all must share the architecture."""
    if not paths:
        raise BundleError("no checkpoints to average")
    bundles = [read_bundle(p) for p in paths]
    first = bundles[0]
    for p, b in zip(paths[1:], bundles[1:]):
        if b["config"]["model"] != first["config"]["model"] or b["model"].keys() != first["model"].keys():
            raise BundleError(f"{p}: a different model architecture than {paths[0]}; cannot average")
    avg = {}
    for k, v in first["model"].items():
        if v.is_floating_point():
            avg[k] = (sum(b["model"][k].double() for b in bundles) / len(bundles)).to(v.dtype)
        else:
            avg[k] = v.clone()
    result = dict(first)
    result["model"] = avg
    result["averaged_from"] = [str(p) for p in paths]
    result.pop("train_state", None)
    Recognizer(result)  # must load
    save_bundle(result, out)
    return result


def pick_checkpoints(exp: str | Path, n: int, by: str = "last") -> list[Path]:
    """The last `n` epoch checkpoints of an experiment, or the `n` with the lowest dev WER (`by="best"`)."""
    ckpts = sorted(Path(exp, "checkpoints").glob("epoch-*.pt"))
    if not ckpts:
        raise BundleError(f"{exp}: no epoch checkpoints in {Path(exp, 'checkpoints')} (train.keep_checkpoints)")
    if by == "last":
        return ckpts[-n:]
    if by != "best":
        raise BundleError(f"unknown selection {by!r} (last or best)")
    scored = []
    for p in ckpts:
        wer = float(read_bundle(p).get("train_state", {}).get("dev_wer", -1.0))
        if wer < 0:
            raise BundleError(f"{p}: no dev WER recorded; use --by last")
        scored.append((wer, p))
    return sorted(p for _, p in sorted(scored)[:n])
