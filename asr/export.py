"""Export a model bundle for deployment: TorchScript, ONNX, or int8 (dynamically quantised) TorchScript.

Each exported file carries what decoding needs besides the network (config, tokenizer, normalisation
statistics, tuned decoding defaults) as JSON: a TorchScript extra file `asr.json`, or ONNX metadata
`asr.json`. `asr.recognizer.Recognizer.load` reads all three formats, so `asr transcribe --model` takes them directly.
ONNX needs the optional extra `pip install 'asr[export]'` (onnx, onnxruntime)."""

from __future__ import annotations

import base64
import json
import warnings
import zipfile
from pathlib import Path

import torch

from asr.bundle import BundleError, build_model, read_bundle
from asr.fileio import atomic_path

FORMATS = ("torchscript", "onnx", "int8")
META = "asr.json"
EXPORT_VERSION = 1


def _meta(bundle: dict, fmt: str) -> str:
    tok = dict(bundle["tokenizer"])
    if "model" in tok:  # SentencePiece model bytes
        tok["model"] = base64.b64encode(bytes(tok["model"])).decode("ascii")
    return json.dumps({"format": "asr-export", "version": EXPORT_VERSION, "export": fmt, "config": bundle["config"],
                       "tokenizer": tok, "cmvn": {k: v.tolist() for k, v in bundle["cmvn"].items()},
                       "decoding": bundle.get("decoding", {})})


def meta_to_bundle(text: str, where) -> dict:
    """The JSON metadata of an exported model → a bundle-like dict (no weights)."""
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        raise BundleError(f"{where}: damaged {META} metadata") from None
    if meta.get("format") != "asr-export" or meta.get("version") != EXPORT_VERSION:
        raise BundleError(f"{where}: not an exported asr model (version {meta.get('version')})")
    tok = dict(meta["tokenizer"])
    if "model" in tok:
        tok["model"] = base64.b64decode(tok["model"])
    return {"config": meta["config"], "tokenizer": tok, "decoding": meta.get("decoding", {}), "export": meta["export"],
            "cmvn": {k: torch.tensor(v, dtype=torch.float32) for k, v in meta["cmvn"].items()}}


def _example(bundle: dict) -> tuple[torch.Tensor, torch.Tensor]:
    n_mels = bundle["config"]["features"]["n_mels"]
    return torch.randn(2, 300, n_mels), torch.tensor([300, 211])


def export(model_path: str | Path, out: str | Path, fmt: str) -> Path:
    """Write `model_path` (a bundle) as `fmt` to `out`; returns `out`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
    bundle = read_bundle(model_path)
    if bundle["config"]["model"]["tbptt_chunk"] > 0:
        raise BundleError(f"{model_path}: chunk-trained (streaming) models are not exported yet; use the bundle")
    model = build_model(bundle).eval()
    if fmt == "int8":
        model = quantize_int8(model)
    feats, lengths = _example(bundle)
    meta = _meta(bundle, fmt)
    out = Path(out)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python ints; the outputs are checked below
        if fmt == "onnx":
            _export_onnx(model, feats, lengths, out, meta)
        else:
            traced = torch.jit.trace(model, (feats, lengths), check_trace=False)
            with atomic_path(out) as tmp:
                torch.jit.save(traced, str(tmp), _extra_files={META: meta})
    return out


def compare(model_path: str | Path, exported: str | Path) -> tuple[float, bool]:
    """(max |log-prob difference|, output lengths equal) of an exported model against its bundle, on a random
    batch of another shape than the one traced."""
    bundle = read_bundle(model_path)
    ref = build_model(bundle).eval()
    loaded = load_exported(Path(exported))
    if loaded is None:
        raise BundleError(f"{exported}: not an exported asr model")
    got = loaded[1].eval()
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(3, 517, bundle["config"]["features"]["n_mels"], generator=gen)
    lengths = torch.tensor([517, 400, 93])
    with torch.no_grad():
        a, al = ref(feats, lengths)
        b, bl = got(feats, lengths)
    return float((a - b).abs().max()), bool(torch.equal(al, bl))


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of the recurrent layers (weights int8 with one scale per output channel,
    activations quantised on the fly), for CPU inference. Measured on the demo model (greedy WER change in
    points, test-seen / test-unseen, one utterance at a time): RNN + output layer, one scale per tensor
    +0.67 / +0.46; RNN only, per tensor +0.56 / +0.46; RNN only, per channel -0.11 / +0.34 (this). The
    output layer stays fp32: it is small, and quantising it only cost accuracy."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.GRU: per_channel_dynamic_qconfig,
                                        torch.nn.LSTM: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def _export_onnx(model, feats, lengths, out: Path, meta: str) -> None:
    try:
        import onnx
    except ImportError:
        raise BundleError("ONNX export needs onnx and onnxruntime: pip install 'asr[export]'") from None
    with atomic_path(out) as tmp:
        torch.onnx.export(model, (feats, lengths), str(tmp), dynamo=False, opset_version=17,
                          input_names=["feats", "lengths"], output_names=["log_probs", "out_lens"],
                          dynamic_axes={"feats": {0: "batch", 1: "frames"}, "lengths": {0: "batch"},
                                        "log_probs": {0: "batch", 1: "out_frames"}, "out_lens": {0: "batch"}})
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = META, meta
        onnx.save(proto, str(tmp))


class OnnxModel:
    """An ONNX Runtime session behind the AcousticModel call signature (CPU)."""

    def __init__(self, path: Path, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BundleError(f"{path}: running an ONNX model needs onnxruntime: pip install 'asr[export]'") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise BundleError(f"{path}: not a loadable ONNX model ({exc})") from None
        self.path = path

    def metadata(self) -> str:
        props = self.session.get_modelmeta().custom_metadata_map
        if META not in props:
            raise BundleError(f"{self.path}: an ONNX model without asr metadata (not written by asr export)")
        return props[META]

    def __call__(self, feats: torch.Tensor, lengths: torch.Tensor):
        lp, ol = self.session.run(None, {"feats": feats.detach().cpu().float().numpy(),
                                         "lengths": lengths.detach().cpu().long().numpy()})
        return torch.from_numpy(lp), torch.from_numpy(ol)

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise BundleError(f"{self.path}: ONNX models run on the CPU here")
        return self

    def eval(self):
        return self


def load_exported(path: Path):
    """(bundle-like dict, callable model) of an exported file, or None if `path` is not one."""
    if path.suffix == ".onnx":
        model = OnnxModel(path)
        return meta_to_bundle(model.metadata(), path), model
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as z:
        if not any(n.endswith(f"extra/{META}") for n in z.namelist()):
            return None
    extra = {META: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still supported
            model = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise BundleError(f"{path}: unreadable TorchScript model ({exc})") from None
    return meta_to_bundle(extra[META], path), model
