"""`asr serve`: transcription as a service on Starlette + uvicorn (the optional `[serve]` extra).

- `POST /v1/audio/transcriptions`: OpenAI's audio transcription API (multipart `file`; response_format json,
  text, srt, vtt or verbose_json; `timestamp_granularities[]`; errors in that API's JSON shape).
- WebSocket at `/ws` and `/`: Vosk's server protocol (optional `{"config": {"sample_rate": N}}`, binary 16-bit
  mono PCM, `{"eof": 1}`); one reply per binary message: `{"partial": ...}`, or `{"text", "result"}` when a
  segment ends at a pause.
- `GET /`: a web page (microphone streaming and file upload); `/healthz`; `/metrics` (Prometheus text).

All network work (forward passes of file pieces and of stream chunks) goes through one `Engine`, which
gathers what is ready from every request and stream into batched forward passes in a worker thread.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import logging
import signal
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from asr.align import align_words
from asr.audio import SAMPLE_RATE, AudioError, pcm16, read_blocks
from asr.pieces import Transcript, _Pieces, piece_features, samples_16k
from asr.recognizer import GreedyChunks, Recognizer, Streamer, chunk_forward_batch
from asr.segment import split_at_silences
from asr.serve_limits import Limits
from asr.transcribe import cues, render

log = logging.getLogger("asr.serve")
WEB = Path(__file__).parent / "web"
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


class Metrics:
    """Counters for /metrics, rendered in Prometheus' text format."""

    BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

    def __init__(self):
        self.requests: Counter = Counter()  # (endpoint, status) -> count
        self.audio_seconds = 0.0
        self.processing_seconds = 0.0
        self.active_streams = 0
        self.active_requests = 0
        self.batches: Counter = Counter()  # bucket -> count
        self.batch_sum = 0
        self.batch_count = 0

    def batch(self, size: int) -> None:
        for b in self.BUCKETS:
            if size <= b:
                self.batches[b] += 1
        self.batch_sum += size
        self.batch_count += 1

    def render(self) -> str:
        def metric(name, kind, help, samples):
            return [f"# HELP {name} {help}", f"# TYPE {name} {kind}"] + [f"{name}{labels} {v}" for labels, v in samples]

        lines = metric("asr_requests_total", "counter", "Requests and streams by endpoint and status.",
                       [(f'{{endpoint="{e}",status="{s}"}}', n) for (e, s), n in sorted(self.requests.items())])
        lines += metric("asr_audio_seconds_total", "counter", "Seconds of audio recognised.",
                        [("", f"{self.audio_seconds:.3f}")])
        lines += metric("asr_processing_seconds_total", "counter", "Seconds spent in forward passes.",
                        [("", f"{self.processing_seconds:.3f}")])
        lines += metric("asr_active_streams", "gauge", "WebSocket streams open now.", [("", self.active_streams)])
        lines += metric("asr_active_requests", "gauge", "HTTP transcription requests in progress.",
                        [("", self.active_requests)])
        lines += metric("asr_batch_size", "histogram", "Pieces or chunks per forward pass.",
                        [(f'_bucket{{le="{b}"}}', self.batches[b]) for b in self.BUCKETS])
        lines += [f'asr_batch_size_bucket{{le="+Inf"}} {self.batch_count}', f"asr_batch_size_sum {self.batch_sum}",
                  f"asr_batch_size_count {self.batch_count}"]
        return "\n".join(lines) + "\n"


class Engine:
    """The batching scheduler: callers `await` forward passes; a loop gathers the queued work (stream chunks
    and file pieces from every client) into batches of at most `max_batch`, waiting at most `max_wait_ms` for
    more, and runs them one at a time in a worker thread. Stream chunks go first (someone is waiting live)."""

    def __init__(self, rec: Recognizer, limits: Limits, metrics: Metrics):
        self.rec = rec
        self.limits = limits
        self.metrics = metrics
        self.queue: asyncio.Queue | None = None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="asr-forward")
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def pieces(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Normalised features of file pieces → each piece's log-probs (T', V)."""
        futs = []
        for f in feats:
            fut = asyncio.get_running_loop().create_future()
            self.queue.put_nowait(("piece", f, fut))
            futs.append(fut)
        return list(await asyncio.gather(*futs))

    async def chunk(self, window: torch.Tensor, states: list) -> tuple[torch.Tensor, list]:
        """One stream's next window → its chunk's log-probs and the states after it."""
        fut = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(("chunk", (window, states), fut))
        return await fut

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            deadline = loop.time() + self.limits.max_wait_ms / 1000
            while len(jobs) < self.limits.max_batch * 2:
                try:
                    jobs.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            for kind in ("chunk", "piece"):
                todo = [j for j in jobs if j[0] == kind and not j[2].done()]
                for i in range(0, len(todo), self.limits.max_batch):
                    batch = todo[i:i + self.limits.max_batch]
                    try:
                        results = await loop.run_in_executor(self.pool, self._run, kind, [j[1] for j in batch])
                    except Exception as exc:  # noqa: BLE001 - handed to the waiting request, which reports it
                        for j in batch:
                            if not j[2].done():
                                j[2].set_exception(exc)
                        continue
                    for j, r in zip(batch, results):
                        if not j[2].done():
                            j[2].set_result(r)

    @torch.no_grad()
    def _run(self, kind: str, items: list) -> list:
        t0 = time.perf_counter()
        if kind == "chunk":
            lps, states = chunk_forward_batch(self.rec.model, [w for w, _ in items], [s for _, s in items],
                                              self.rec.device)
            out = list(zip(lps, states))
        else:
            lengths = torch.tensor([f.shape[0] for f in items])
            log_probs, out_lens = self.rec.forward(torch.nn.utils.rnn.pad_sequence(items, batch_first=True), lengths)
            out = [log_probs[i, : int(out_lens[i])].cpu() for i in range(len(items))]
        self.metrics.processing_seconds += time.perf_counter() - t0
        self.metrics.batch(len(items))
        return out


def _words_json(words, offset: float = 0.0) -> list[dict]:
    return [{"word": w.word, "start": round(w.start + offset, 3), "end": round(w.end + offset, 3),
             "conf": round(float(w.score), 4)} for w in words]


class ChunkSession:
    """A stream on a chunk-trained (latency-controlled) model: a partial after every chunk; a segment ends
    (`{"text", "result"}`) when `endpoint_s` of output frames have been blank after some text."""

    def __init__(self, engine: Engine, endpoint_s: float):
        self.engine = engine
        self.rec = engine.rec
        self.streamer = Streamer(self.rec)
        self.endpoint_frames = max(1, round(endpoint_s / self.rec.frame_seconds))
        self.segment = GreedyChunks(keep=True)  # the open segment (its chunks kept for word times)
        self.seg_start = 0  # output frame where the open segment starts
        self.frames = 0  # output frames so far

    async def _advance(self, windows) -> list[dict]:
        results = []
        for window, n_main in windows:
            lp, self.streamer.states = await self.engine.chunk(window, self.streamer.states)
            self.segment.add([lp[:n_main]])
            self.frames += n_main
            if self.segment.ids and self.segment.trailing >= self.endpoint_frames:
                results.append(self._close_segment())
        return results

    def _close_segment(self) -> dict:
        seg, fs = self.segment, self.rec.frame_seconds
        text = self.rec.tokenizer.decode(seg.ids)
        words = align_words(torch.cat(seg.kept), text, self.rec.tokenizer, fs, self.seg_start * fs) if text else []
        self.segment, self.seg_start = GreedyChunks(keep=True, last=seg.last), self.frames
        return {"text": text, "result": _words_json(words)}

    async def audio(self, samples: np.ndarray) -> dict:
        results = await self._advance(self.streamer.windows(torch.from_numpy(samples)))
        return results[-1] if results else {"partial": self.rec.tokenizer.decode(self.segment.ids)}

    async def finish(self) -> dict:
        await self._advance(self.streamer.windows(None, final=True))
        return self._close_segment()


class SegmentSession:
    """A stream on a full-context model: audio is buffered and cut at pauses (an energy detector); each
    segment is recognised whole when it ends. Partials re-recognise the open segment at most once a second."""

    FRAME = SAMPLE_RATE // 100  # 10 ms

    def __init__(self, engine: Engine, endpoint_s: float, max_segment_s: float = 20.0):
        self.engine = engine
        self.rec = engine.rec
        self.buf = np.zeros(0, dtype=np.float32)
        self.start = 0  # first sample of the open segment in the stream
        self.silent = 0  # trailing silent samples of the open segment
        self.speech = False
        self.peak = 0.0
        self.endpoint = int(endpoint_s * SAMPLE_RATE)
        self.max_segment = int(max_segment_s * SAMPLE_RATE)
        self.last_partial = 0
        self.partial = ""

    def _update_vad(self, samples: np.ndarray) -> None:
        for i in range(0, samples.shape[0], self.FRAME):
            frame = samples[i:i + self.FRAME]
            rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) if frame.size else 0.0
            self.peak = max(self.peak * 0.9995, rms)
            loud = rms > max(1e-3, self.peak * 0.1)  # within 20 dB of the recent peak and above -60 dBFS
            if loud:
                self.speech, self.silent = True, 0
            else:
                self.silent += frame.shape[0]

    async def _recognise(self, samples: np.ndarray, offset_s: float) -> tuple[str, list]:
        pieces = [(0, samples)]
        feats, starts = await asyncio.to_thread(piece_features, self.rec, pieces)
        lps = await self.engine.pieces(feats)
        acc = _Pieces(words=True)
        await asyncio.to_thread(acc.add, self.rec, pieces, lps, starts)
        t = acc.transcript("", samples.shape[0] / SAMPLE_RATE)
        return t.text, _words_json(t.words, offset_s)

    async def _close_segment(self) -> dict:
        seg, offset = self.buf, self.start / SAMPLE_RATE
        self.start += seg.shape[0]
        self.buf, self.silent, self.speech, self.last_partial, self.partial = np.zeros(0, np.float32), 0, False, 0, ""
        text, words = await self._recognise(seg, offset) if seg.shape[0] else ("", [])
        return {"text": text, "result": words}

    async def audio(self, samples: np.ndarray) -> dict:
        self.buf = np.concatenate([self.buf, samples])
        self._update_vad(samples)
        if not self.speech and self.buf.shape[0] > self.endpoint:  # leading silence: drop it, keep the clock
            drop = self.buf.shape[0] - self.endpoint
            self.buf, self.start = self.buf[drop:], self.start + drop
        if self.speech and (self.silent >= self.endpoint or self.buf.shape[0] >= self.max_segment):
            return await self._close_segment()
        if self.speech and self.buf.shape[0] - self.last_partial >= SAMPLE_RATE:
            self.last_partial = self.buf.shape[0]
            self.partial, _ = await self._recognise(self.buf, 0.0)
        return {"partial": self.partial}

    async def finish(self) -> dict:
        if not self.speech:
            self.buf = np.zeros(0, np.float32)
        return await self._close_segment()


def new_session(engine: Engine, limits: Limits):
    return ChunkSession(engine, limits.endpoint_s) if engine.rec.cfg.model.tbptt_chunk > 0 else \
        SegmentSession(engine, limits.endpoint_s)


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers or {}


def _error_type(status: int) -> str:
    return {401: "authentication_error", 413: "invalid_request_error", 429: "rate_limit_error",
            503: "server_error"}.get(status, "invalid_request_error" if status < 500 else "server_error")


def create_app(rec: Recognizer, limits: Limits | None = None, api_key: str | None = None, model_name: str = "asr"):
    """The ASGI application serving `rec` (see the module docstring)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocket, WebSocketDisconnect

    limits = limits or Limits()
    limits.check()
    metrics = Metrics()
    engine = Engine(rec, limits, metrics)
    state = {"draining": False}
    access = logging.getLogger("asr.access")

    def authorised(headers, query) -> bool:
        if not api_key:
            return True
        given = headers.get("authorization", "")
        if given.lower().startswith("bearer "):
            given = given[7:]
        else:
            given = headers.get("x-api-key", "") or query.get("api_key", "")
        return hmac.compare_digest(given.encode(), api_key.encode())

    def error_response(e: ApiError) -> JSONResponse:
        body = {"error": {"message": e.message, "type": _error_type(e.status), "param": e.param, "code": e.code}}
        return JSONResponse(body, status_code=e.status, headers=e.headers)

    def guarded(endpoint_name: str, handler):
        async def run(request: Request):
            t0 = time.perf_counter()
            try:
                if not authorised(request.headers, request.query_params):
                    raise ApiError(401, "missing or wrong API key (send 'Authorization: Bearer KEY')",
                                   code="invalid_api_key")
                if state["draining"]:
                    raise ApiError(503, "the server is shutting down", headers={"Retry-After": "5"})
                response = await handler(request)
            except ApiError as e:
                response = error_response(e)
            metrics.requests[(endpoint_name, response.status_code)] += 1
            access.info(json.dumps({"time": round(time.time(), 3), "client": request.client.host if request.client
                                    else None, "method": request.method, "path": request.url.path,
                                    "status": response.status_code, "ms": round((time.perf_counter() - t0) * 1000, 1)}))
            return response
        return run

    async def read_upload(request: Request) -> tuple[bytes, str, dict]:
        limit = int(limits.max_upload_mb * 1024 * 1024)
        too_big = ApiError(413, f"request body larger than the {limits.max_upload_mb:g} MB limit",
                           code="file_too_large")
        slack = 64 * 1024  # room for the multipart headers and the other fields
        drain = max(4 * limit, 16 * 1024 * 1024)  # read (and drop) this much of an oversized body before the 413
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > drain:
            raise too_big  # not worth reading: the client will see the connection close instead
        body, seen = bytearray(), 0
        async for part in request.stream():
            seen += len(part)
            if seen <= limit + slack:
                body += part
            elif seen > drain:
                break
        if seen > limit + slack:  # answered once the body is read, so that the client gets to see the 413
            raise too_big
        request._body = bytes(body)  # starlette's form parser reads the cached body
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ApiError(400, "send the audio as multipart/form-data with a 'file' field", param="file")
        try:
            form = await request.form(max_files=1, max_fields=32)
        except Exception as exc:  # noqa: BLE001 - starlette raises several types for malformed bodies
            raise ApiError(400, f"malformed multipart body: {exc}") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "missing 'file': the audio file to transcribe", param="file")
        data = await upload.read()
        if len(data) > limit:
            raise too_big
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        fields["timestamp_granularities"] = form.getlist("timestamp_granularities[]") + \
            form.getlist("timestamp_granularities")
        return data, upload.filename or "upload", fields

    async def transcribe_bytes(data: bytes, name: str) -> Transcript:
        def prepare():
            import soundfile as sf

            try:
                info = sf.info(io.BytesIO(data))
            except Exception as exc:  # noqa: BLE001 - soundfile/libsndfile errors
                raise AudioError(f"{name}: cannot decode audio ({str(exc).strip() or type(exc).__name__})") from None
            if info.samplerate and info.frames / info.samplerate > limits.max_audio_s:
                raise ApiError(413, f"{name}: audio is {info.frames / info.samplerate:.0f} s long, over the "
                                    f"{limits.max_audio_s:g} s limit", param="file", code="audio_too_long")
            f = io.BytesIO(data)
            f.name = name
            pieces = list(split_at_silences(read_blocks(f), 20.0))
            return pieces, *piece_features(rec, pieces)

        try:
            pieces, feats, starts = await asyncio.to_thread(prepare)
        except AudioError as exc:
            reason = str(exc)
            status = 415 if "recognised" in reason.lower() or "unknown format" in reason.lower() else 400
            raise ApiError(status, reason, param="file", code="invalid_audio") from None
        lps = await engine.pieces(feats) if feats else []
        acc = _Pieces(words=True)
        await asyncio.to_thread(acc.add, rec, pieces, lps, starts)
        t = acc.transcript(name, sum(p.shape[0] for _, p in pieces) / SAMPLE_RATE)
        metrics.audio_seconds += t.duration
        return t

    async def transcriptions(request: Request):
        metrics.active_requests += 1
        try:
            data, name, fields = await read_upload(request)
            fmt = fields.get("response_format", "json") or "json"
            if fmt not in FORMATS:
                raise ApiError(400, f"response_format must be one of {', '.join(FORMATS)}, not {fmt!r}",
                               param="response_format")
            grains = set(fields["timestamp_granularities"]) or {"segment"}
            if grains - {"word", "segment"}:
                raise ApiError(400, f"timestamp_granularities[] takes word and segment, not {sorted(grains)}",
                               param="timestamp_granularities[]")
            t = await transcribe_bytes(data, name)
        finally:
            metrics.active_requests -= 1
        if fmt == "text":
            return PlainTextResponse(t.text + "\n")
        if fmt in ("srt", "vtt"):
            return PlainTextResponse(render(t, fmt), media_type="text/vtt" if fmt == "vtt" else "application/x-subrip")
        if fmt == "json":
            return JSONResponse({"text": t.text})
        body = {"task": "transcribe", "language": "english", "duration": round(t.duration, 3), "text": t.text,
                "confidence": t.confidence}
        if "segment" in grains:
            body["segments"] = [{"id": i, "seek": 0, "start": round(a, 3), "end": round(b, 3), "text": text,
                                 "tokens": [], "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 1.0,
                                 "no_speech_prob": 0.0} for i, (a, b, text) in enumerate(cues(t))]
        if "word" in grains:
            body["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                              "confidence": round(float(w.score), 4)} for w in t.words]
        return JSONResponse(body)

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "asr"}]})

    async def healthz(request: Request):
        return JSONResponse({"status": "draining" if state["draining"] else "ok", "model": model_name,
                             "streaming": "chunked" if rec.cfg.model.tbptt_chunk > 0 else "segments"})

    async def metrics_page(request: Request):
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    async def page(request: Request):
        return HTMLResponse((WEB / "index.html").read_text(encoding="utf-8"))

    async def websocket(ws: WebSocket):
        t0 = time.perf_counter()
        status = "closed"
        if not authorised(ws.headers, ws.query_params):
            metrics.requests[("ws", 401)] += 1
            await _deny(ws, 401, "missing or wrong API key")
            return
        if state["draining"] or metrics.active_streams >= limits.max_streams:
            metrics.requests[("ws", 503)] += 1
            await _deny(ws, 503, "the server is shutting down" if state["draining"] else
                        f"all {limits.max_streams} streams are in use; try again later")
            return
        metrics.active_streams += 1
        await ws.accept()
        session = new_session(engine, limits)
        rate = SAMPLE_RATE
        carry = b""
        seconds = 0.0
        try:
            while True:
                left = min(limits.stream_idle_s, limits.stream_max_s - (time.perf_counter() - t0))
                if left <= 0:
                    status = "total timeout"
                    await _fail(ws, f"stream longer than {limits.stream_max_s:g} s", 1008)
                    break
                try:
                    msg = await asyncio.wait_for(ws.receive(), left)
                except TimeoutError:
                    status = "idle timeout"
                    await _fail(ws, f"no data for {limits.stream_idle_s:g} s" if left == limits.stream_idle_s
                                else f"stream longer than {limits.stream_max_s:g} s", 1008)
                    break
                if msg["type"] == "websocket.disconnect":
                    status = "client closed"
                    break
                if msg.get("bytes") is not None:
                    data = carry + msg["bytes"]
                    carry = data[len(data) - len(data) % 2:]
                    samples = pcm16(data[: len(data) - len(data) % 2])
                    seconds += samples.shape[0] / rate
                    if rate != SAMPLE_RATE and samples.size:
                        samples = samples_16k(samples, rate)
                    await ws.send_json(await session.audio(samples))
                    continue
                try:
                    obj = json.loads(msg.get("text") or "")
                    if not isinstance(obj, dict):
                        raise ValueError("expected a JSON object")
                except ValueError as exc:
                    status = "bad message"
                    await _fail(ws, f"malformed message (not a JSON object: {exc})", 1007)
                    break
                if "config" in obj:
                    cfg = obj["config"]
                    sr = cfg.get("sample_rate", SAMPLE_RATE) if isinstance(cfg, dict) else None
                    if not isinstance(sr, int | float) or isinstance(sr, bool) or not 4000 <= sr <= 192000:
                        status = "bad config"
                        await _fail(ws, f"config.sample_rate must be a number from 4000 to 192000, not {sr!r}", 1007)
                        break
                    rate = int(sr)
                    continue  # as Vosk's server: no reply to a config message
                if "eof" in obj:
                    await ws.send_json(await session.finish())
                    status = "eof"
                    await ws.close(1000)
                    break
                status = "bad message"
                await _fail(ws, f"unknown message {sorted(obj)!r} (expected config, eof, or binary PCM)", 1007)
                break
        except WebSocketDisconnect:
            status = "client closed"
        finally:
            metrics.active_streams -= 1
            metrics.audio_seconds += seconds
            metrics.requests[("ws", 200 if status in ("eof", "client closed") else 400)] += 1
            access.info(json.dumps({"time": round(time.time(), 3), "client": ws.client.host if ws.client else None,
                                    "path": ws.url.path, "websocket": status, "audio_s": round(seconds, 3),
                                    "ms": round((time.perf_counter() - t0) * 1000, 1)}))

    async def _deny(ws: WebSocket, status: int, message: str) -> None:
        body = json.dumps({"error": {"message": message, "type": _error_type(status)}})
        try:
            await ws.send_denial_response(Response(body, status_code=status, media_type="application/json",
                                                   headers={"Retry-After": "5"} if status == 503 else None))
        except RuntimeError:  # the server cannot send an HTTP response to an upgrade: accept, say why, close
            await ws.accept()
            await ws.send_json({"error": message})
            await ws.close(1008 if status == 401 else 1013)

    async def _fail(ws: WebSocket, message: str, code: int) -> None:
        try:
            await ws.send_json({"error": message})
            await ws.close(code)
        except (RuntimeError, WebSocketDisconnect):
            pass

    async def http_root(request: Request):
        return await guarded("page", page)(request)

    routes = [
        Route("/v1/audio/transcriptions", guarded("transcriptions", transcriptions), methods=["POST"]),
        Route("/v1/models", guarded("models", models), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", guarded("metrics", metrics_page), methods=["GET"]),
        Route("/", http_root, methods=["GET"]),
        WebSocketRoute("/", websocket),
        WebSocketRoute("/ws", websocket),
        Mount("/static", StaticFiles(directory=WEB), name="static"),
    ]

    async def lifespan(app):
        await engine.start()
        yield
        await engine.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.asr = {"engine": engine, "metrics": metrics, "state": state, "limits": limits}
    return app


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          limits: Limits | None = None, device: str = "cpu") -> int:
    """Load `model` and serve it until SIGTERM or Ctrl-C; SIGTERM first drains in-flight requests and streams."""
    try:
        import uvicorn
    except ImportError:
        raise RuntimeError("asr serve needs the serve extra: pip install 'asr[serve]'") from None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("asr.access").setLevel(logging.INFO)
    rec = Recognizer.load(model, device)
    limits = limits or Limits()
    app = create_app(rec, limits, api_key, Path(model).stem)
    state, metrics = app.state.asr["state"], app.state.asr["metrics"]
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, ws="websockets",
                            timeout_graceful_shutdown=5, lifespan="on")

    class Server(uvicorn.Server):
        loop: asyncio.AbstractEventLoop | None = None

        async def startup(self, sockets=None):
            Server.loop = asyncio.get_running_loop()
            await super().startup(sockets)
            if not self.should_exit:
                bound = [s.getsockname() for srv in self.servers for s in srv.sockets]
                where = ", ".join(f"http://{h}:{p}" for h, p, *_ in bound)
                print(f"asr serve: {Path(model).name} on {where} (streaming: "
                      f"{'chunked' if rec.cfg.model.tbptt_chunk > 0 else 'segments at pauses'}; "
                      f"API key {'required' if api_key else 'off'})", file=sys.stderr, flush=True)

        def handle_exit(self, sig, frame):
            if sig != signal.SIGTERM or state["draining"] or self.loop is None:
                return super().handle_exit(sig, frame)
            state["draining"] = True
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._drain()))

        async def _drain(self):
            print(f"asr serve: SIGTERM: draining {metrics.active_requests} request(s) and "
                  f"{metrics.active_streams} stream(s)", file=sys.stderr, flush=True)
            deadline = time.monotonic() + limits.drain_s
            while (metrics.active_requests or metrics.active_streams) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            self.should_exit = True

    server = Server(config)
    server.run()
    print("asr serve: stopped", file=sys.stderr, flush=True)
    return 0
