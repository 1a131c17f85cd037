"""Model bundle: one file with weights, resolved config, tokenizer, CMVN statistics and a format version;
packaging an experiment's model and averaging checkpoints. Running a bundle is `asr.recognizer`."""

from __future__ import annotations

from pathlib import Path

import torch

from asr.config import Config, from_dict, to_dict
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
    missing = [k for k in ("config", "tokenizer", "cmvn", "model") if not isinstance(bundle.get(k), dict)]
    if missing:
        raise BundleError(f"{path}: damaged model bundle (no {', '.join(missing)})")
    return bundle


def build_model(bundle: dict) -> AcousticModel:
    """The bundle's network with its weights loaded (CPU, training mode); fails if they do not fit the config."""
    cfg = from_dict(bundle["config"])
    try:
        tokenizer = tokenizer_from_state(bundle["tokenizer"])
        model = AcousticModel(cfg.model, cfg.features.n_mels, tokenizer.vocab_size)
        model.load_state_dict(bundle["model"])
    except (KeyError, RuntimeError) as exc:
        raise BundleError(f"model weights do not match the bundle's config and tokenizer ({exc})") from None
    return model


def package(exp: str | Path, out: str | Path) -> Path:
    """The deliverable of an experiment: its best model bundle, checked by loading it, with the experiment's
    RESULTS.json rows (if scored) and its name attached, written atomically to `out`."""
    import json

    exp = Path(exp)
    bundle = read_bundle(exp / "model.pt")
    build_model(bundle)  # must build and load
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
    build_model(result)  # must load
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


def store_decoding(model_path: str | Path, decoding: dict, out: str | Path | None = None) -> Path:
    """Store beam-search defaults (`asr tune`'s LM weight and word bonus) in a bundle, written to `out`
    (default: in place); decoding with the bundle takes them as defaults."""
    bundle = read_bundle(model_path)
    bundle["decoding"] = dict(decoding)
    save_bundle(bundle, out or model_path)
    return Path(out or model_path)
