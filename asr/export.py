"""Export a model bundle for deployment: TorchScript, ONNX, or int8 (dynamically quantised) TorchScript.

Each exported file carries what decoding needs besides the network (config, tokenizer, normalisation
statistics, tuned decoding defaults) as JSON: a TorchScript extra file `asr.json`, or ONNX metadata
`asr.json`. `asr.recognizer.Recognizer.load` reads all three formats, so `asr transcribe --model` takes them directly.
ONNX needs the optional extra `pip install 'asr[export]'` (onnx, onnxruntime).

A chunk-trained (streaming) model is exported as its *chunk step*: one window of front-end output (K + R
frames) and the packed recurrent states before it → the chunk's log-probs and the states after it
(`StepExport`). Tracing a whole-utterance chunk loop would bake one utterance length into the graph; the
step has a fixed window length, and `ChunkedExport` runs the loop over it in Python, for whole utterances
(the same windows as `AcousticModel.chunked`) and for streams (`asr.recognizer.Streamer`). TorchScript and
int8 files carry the front end as the module's `forward` and the step as its `step` method; an ONNX file
holds the step only, so it needs the parameter-free frame-stacking front end (`model.subsampling=stack`)."""

from __future__ import annotations

import base64
import json
import warnings
import zipfile
from pathlib import Path

import torch

from asr.bundle import BundleError, build_model, read_bundle
from asr.fileio import atomic_path
from asr.model import FrameStacking, make_windows, window_lengths

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
    mcfg = bundle["config"]["model"]
    chunked = mcfg["tbptt_chunk"] > 0
    if chunked and fmt == "onnx" and mcfg["subsampling"] != "stack":
        raise BundleError(f"{model_path}: an ONNX export of a chunk-trained model holds the chunk step only and "
                          "needs model.subsampling=stack (this model has a conv front end); use torchscript or int8")
    model = build_model(bundle).eval()
    if fmt == "int8":
        model = quantize_int8(model)
    feats, lengths = _example(bundle)
    meta = _meta(bundle, fmt)
    out = Path(out)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python ints; the outputs are checked below
        if chunked:
            step = StepExport(model)
            step_args = step.example(feats, lengths)
            if fmt == "onnx":
                _export_onnx_step(step, step_args, out, meta)
            else:
                traced = torch.jit.trace_module(step, {"forward": (feats, lengths), "step": step_args},
                                                check_trace=False)
                with atomic_path(out) as tmp:
                    torch.jit.save(traced, str(tmp), _extra_files={META: meta})
        elif fmt == "onnx":
            _export_onnx(model, feats, lengths, out, meta)
        else:
            traced = torch.jit.trace(model, (feats, lengths), check_trace=False)
            with atomic_path(out) as tmp:
                torch.jit.save(traced, str(tmp), _extra_files={META: meta})
    return out


def state_slots(rnn_type: str) -> int:
    """Tensors in one layer's forward state: (h, c) for an LSTM, h otherwise."""
    return 2 if rnn_type == "lstm" else 1


def pack_states(states: list, layers: int, slots: int, batch: int, hidden: int) -> torch.Tensor:
    """Per-layer forward states (None = zeros; (1, B, H), or an LSTM's (h, c)) → one (layers, slots, B, H)."""
    if all(s is None for s in states):
        return torch.zeros(layers, slots, batch, hidden)
    parts = []
    for s in states:
        if s is None:
            parts.append(torch.zeros(slots, batch, hidden))
        else:
            parts.append(torch.cat(list(s) if isinstance(s, tuple) else [s], dim=0))
    return torch.stack(parts)


def unpack_states(packed: torch.Tensor) -> list:
    """(layers, slots, B, H) → per-layer states as the model's layers take them."""
    return [(layer[0:1], layer[1:2]) if layer.shape[0] == 2 else layer[0:1] for layer in packed]


class StepExport(torch.nn.Module):
    """What is traced for a chunk-trained model: `forward` is the front end (features, lengths → front-end
    output, lengths), `step` one window of front-end output (B, K + R, D), its valid frames (B,) and the packed
    states (layers, slots, B, H) → chunk log-probs (B, K, V) and the packed states after it."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        cfg = model.cfg
        self.window = cfg.tbptt_chunk + (cfg.right_context if cfg.bidirectional else 0)
        self.layers, self.slots, self.hidden = cfg.num_layers, state_slots(cfg.rnn_type), cfg.hidden_size

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor):
        return self.model.frontend(feats, lengths)

    def step(self, window: torch.Tensor, wlens: torch.Tensor, state: torch.Tensor):
        log_probs, states = self.model.chunk_forward(window, wlens, unpack_states(state))
        return log_probs, pack_states(states, self.layers, self.slots, window.shape[0], self.hidden)

    def example(self, feats: torch.Tensor, lengths: torch.Tensor):
        x, _ = self.forward(feats, lengths)
        gen = torch.Generator().manual_seed(0)
        state = torch.randn(self.layers, self.slots, x.shape[0], self.hidden, generator=gen) * 0.1
        wlens = torch.tensor([self.window] + [max(1, self.window // 2)] * (x.shape[0] - 1))
        return x[:, :self.window].contiguous(), wlens, state


class ChunkedExport:
    """An exported chunk-trained model behind the AcousticModel interface that inference uses: called on
    padded features it runs the chunk step over every window, like `AcousticModel.chunked`; `frontend` and
    `chunk_forward` are what `Streamer` and `chunk_forward_batch` call."""

    def __init__(self, cfg: dict, frontend, step, module=None):
        m = cfg["model"]
        self.chunk = m["tbptt_chunk"]
        self.context = m["right_context"] if m["bidirectional"] else 0
        self.layers, self.slots, self.hidden = m["num_layers"], state_slots(m["rnn_type"]), m["hidden_size"]
        self.module = module  # the TorchScript module, moved by `to`
        self.step = step
        n_mels, factor = cfg["features"]["n_mels"], m["subsampling_factor"]
        with torch.no_grad():
            out_dim = frontend(torch.zeros(1, factor, n_mels), torch.tensor([factor]))[0].shape[-1]
        self.frontend = _Frontend(frontend, out_dim)

    def __call__(self, feats: torch.Tensor, lengths: torch.Tensor):
        x, out_lens = self.frontend(feats, lengths)
        b, t, _ = x.shape
        windows = make_windows(x, self.chunk, self.context)
        wlens = window_lengths(out_lens.to(x.device), windows.shape[1], self.chunk, self.context)
        state = torch.zeros(self.layers, self.slots, b, self.hidden, device=x.device)
        outs = []
        for c in range(windows.shape[1]):
            lp, state = self.step(windows[:, c].contiguous(), wlens[:, c], state)
            outs.append(lp)
        return torch.cat(outs, dim=1)[:, :t], out_lens

    def chunk_forward(self, window: torch.Tensor, wlens: torch.Tensor, states: list):
        """As `AcousticModel.chunk_forward`: windows shorter than K + R are padded to it (their valid length
        is passed on, so the valid outputs do not change)."""
        n = window.shape[1]
        full = self.chunk + self.context
        if n < full:
            window = torch.nn.functional.pad(window, (0, 0, 0, full - n))
        state = pack_states(states, self.layers, self.slots, window.shape[0], self.hidden).to(window.device)
        lp, state = self.step(window, wlens, state)
        return lp[:, :min(n, self.chunk)], unpack_states(state)

    def to(self, device):
        if self.module is not None:
            self.module.to(device)
        elif torch.device(device).type != "cpu":
            raise BundleError("ONNX models run on the CPU here")
        return self

    def eval(self):
        return self


class _Frontend:
    def __init__(self, fn, out_dim: int):
        self.fn, self.out_dim = fn, out_dim

    def __call__(self, feats, lengths):
        return self.fn(feats, lengths)


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


def _export_onnx_step(step: StepExport, args, out: Path, meta: str) -> None:
    try:
        import onnx
    except ImportError:
        raise BundleError("ONNX export needs onnx and onnxruntime: pip install 'asr[export]'") from None
    with atomic_path(out) as tmp:
        torch.onnx.export(_StepOnly(step), args, str(tmp), dynamo=False, opset_version=17,
                          input_names=["window", "wlens", "state"], output_names=["log_probs", "state_out"],
                          dynamic_axes={"window": {0: "batch"}, "wlens": {0: "batch"}, "state": {2: "batch"},
                                        "log_probs": {0: "batch"}, "state_out": {2: "batch"}})
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = META, meta
        onnx.save(proto, str(tmp))


class _StepOnly(torch.nn.Module):
    def __init__(self, step: StepExport):
        super().__init__()
        self.inner = step

    def forward(self, window, wlens, state):
        return self.inner.step(window, wlens, state)


class OnnxModel:
    """An ONNX Runtime session behind the AcousticModel call signature (CPU); for a chunk-trained model's
    file, `step` runs the chunk step (see `ChunkedExport`)."""

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

    def step(self, window: torch.Tensor, wlens: torch.Tensor, state: torch.Tensor):
        lp, st = self.session.run(None, {"window": window.detach().cpu().float().numpy(),
                                         "wlens": wlens.detach().cpu().long().numpy(),
                                         "state": state.detach().cpu().float().numpy()})
        return torch.from_numpy(lp), torch.from_numpy(st)

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
        meta = meta_to_bundle(model.metadata(), path)
        if meta["config"]["model"]["tbptt_chunk"] > 0:
            m = meta["config"]["model"]
            stack = FrameStacking(meta["config"]["features"]["n_mels"], m["subsampling_factor"])
            return meta, ChunkedExport(meta["config"], stack, model.step)
        return meta, model
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
    meta = meta_to_bundle(extra[META], path)
    if meta["config"]["model"]["tbptt_chunk"] > 0:
        return meta, ChunkedExport(meta["config"], model.forward, model.step, module=model)
    return meta, model
