"""Benchmark: `asr serve` under load, on loopback: many real-time WebSocket streams, then concurrent file uploads.

Streams: N clients (N = 1, 8, 16, 32, 64 by default) each send a demo test file as 16-bit PCM in 100 ms blocks
paced at real time (Vosk's protocol: each block waits for its reply) against a chunked (latency-controlled)
model. Added latency = time from sending a block to receiving its reply: how long the server kept the audio
beyond the model's own algorithmic latency (a chunk's K + R frames must arrive before it can be computed,
whatever the server does). Reported: p50 / p95 / max added latency, whether every final text equals the
offline transcription of the same file, the WER of the final texts and of offline against the references,
the server's CPU use (cores), and the mean batch size of the forward passes (/metrics).

Files: C clients (1, 4, 16) each upload files one after another to /v1/audio/transcriptions (json) for a
fixed number of requests; throughput = seconds of audio transcribed / wall seconds (x real time).

    python bench/serve_load.py --model CHUNKED.pt --manifest exp/demo/data/test-unseen.jsonl [--streams 1 8 32]
        [--clients 1 4 16] [--seconds-per-stream 20] [--out FILE.md]

Bounded: each stream level sends at most --seconds-per-stream of audio per client; each file level makes
--requests-per-client requests per client. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LOG = "/tmp/asr-serve-load.log"  # the server's stderr (its JSON access log): a pipe nobody reads would fill up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def start_server(model: Path, port: int, max_streams: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "asr", "serve", "--model", str(model), "--port", str(port),
                             "--max-streams", str(max_streams), "--stream-idle-s", "120", "--drain-s", "5"],
                            stdout=subprocess.DEVNULL, stderr=open(LOG, "w"), text=True)  # noqa: SIM115
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {Path(LOG).read_text()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start in 120 s")


def pcm_of(path: str) -> bytes:
    from asr.audio import load_audio

    return (np.clip(load_audio(path), -1, 1) * 32767).astype("<i2").tobytes()


async def stream_client(url: str, pcms: list[bytes], seconds: float, block_s: float, start_at: float,
                        lat: list[float]) -> list[str]:
    """Send files one after another in real time for `seconds` of audio (whole files); the final texts."""
    import websockets

    step = int(16000 * block_s) * 2
    texts = []
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    sent = 0.0
    i = 0
    while sent < seconds:
        pcm = pcms[i % len(pcms)]
        i += 1
        async with websockets.connect(url, max_size=None, open_timeout=60) as ws:
            pieces = []
            t0 = time.perf_counter()
            for n, k in enumerate(range(0, len(pcm), step)):
                due = t0 + n * block_s  # real time: block n is sent when its audio would have been spoken
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                t = time.perf_counter()
                await ws.send(pcm[k:k + step])
                reply = json.loads(await ws.recv())
                lat.append(time.perf_counter() - t)
                if reply.get("text"):
                    pieces.append(reply["text"])
            await ws.send('{"eof": 1}')
            reply = json.loads(await ws.recv())
            if reply.get("text"):
                pieces.append(reply["text"])
        texts.append(" ".join(pieces))
        sent += len(pcm) / 2 / 16000
    return texts


async def run_streams(url: str, pcms: list[bytes], n: int, seconds: float, block_s: float):
    lat: list[float] = []
    start = time.perf_counter() + 0.5
    # clients start spread over one block so that their blocks do not all arrive at the same instant
    results = await asyncio.gather(*(stream_client(url, pcms[c % len(pcms):] + pcms[:c % len(pcms)], seconds,
                                                   block_s, start + block_s * c / n, lat) for c in range(n)),
                                   return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    return [r if not isinstance(r, BaseException) else [] for r in results], lat, failed


def post(url: str, name: str, data: bytes) -> str:
    boundary = "----asrbench"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nasr\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "/v1/audio/transcriptions", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.load(r)["text"]


async def upload_client(url: str, files: list[tuple[str, bytes]], requests: int, offset: int) -> list[str]:
    """One client: `requests` uploads one after another (each waits for its answer)."""
    out = []
    for r in range(requests):
        name, data = files[(offset + r) % len(files)]
        out.append(await asyncio.to_thread(post, url, name, data))
    return out


def wer(refs: list[str], hyps: list[str]) -> float:
    from asr.score import compute

    return compute(refs, hyps).wer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a chunked (latency-controlled) model bundle")
    p.add_argument("--manifest", required=True, help="test manifest (audio and reference text)")
    p.add_argument("--streams", type=int, nargs="+", default=[1, 8, 16, 32, 64])
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seconds-per-stream", type=float, default=20.0)
    p.add_argument("--requests-per-client", type=int, default=0, help="default: 64 / clients, at least 4")
    p.add_argument("--block-ms", type=float, default=100.0)
    p.add_argument("--files", type=int, default=40, help="test utterances used")
    p.add_argument("--out", help="also append the markdown tables to this file")
    args = p.parse_args()

    import torch

    from asr.manifest import read_manifest
    from asr.recognizer import Recognizer

    torch.set_num_threads(2)
    utts = read_manifest(args.manifest)[: args.files]
    rec = Recognizer.load(args.model)
    if rec.cfg.model.tbptt_chunk <= 0:
        raise SystemExit(f"{args.model}: not a chunked model (model.tbptt_chunk = 0); streams need one")
    latency_ms = rec.stream().latency_ms
    offline = {u.id: rec.transcribe(u.audio, words=False).text for u in utts}
    refs = {u.id: u.text for u in utts}
    pcms = [pcm_of(u.audio) for u in utts]
    ids = [u.id for u in utts]
    del rec

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(Path(args.model), port, max(args.streams) + 8)
    lines = [f"Model {args.model} (chunk {latency_ms:.0f} ms algorithmic latency), {len(utts)} utterances of "
             f"{args.manifest}, blocks of {args.block_ms:.0f} ms, {os.cpu_count()} CPU cores, torch "
             f"{torch.__version__}.", "",
             "| streams | audio s | added latency p50 / p95 / max ms | final = offline | WER stream / offline % "
             "| server CPU (cores) | mean batch |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    try:
        for n in args.streams:
            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            b0, c0 = metric(url, "asr_batch_size_sum"), metric(url, "asr_batch_size_count")
            ws_url = url.replace("http", "ws") + "/ws"
            block_s = args.block_ms / 1000
            texts, lat, failed = asyncio.run(run_streams(ws_url, pcms, n, args.seconds_per_stream, block_s))
            wall = time.perf_counter() - t0
            cores = (cpu_seconds(proc.pid) - cpu0) / wall
            batches = max(1.0, metric(url, "asr_batch_size_count") - c0)
            mean_batch = (metric(url, "asr_batch_size_sum") - b0) / batches
            same = total = 0
            hyp_list, off_list, ref_list = [], [], []
            for c, client_texts in enumerate(texts):
                order = ids[c % len(ids):] + ids[: c % len(ids)]
                for k, text in enumerate(client_texts):
                    uid = order[k % len(order)]
                    total += 1
                    same += " ".join(text.split()) == " ".join(offline[uid].split())
                    hyp_list.append(text)
                    off_list.append(offline[uid])
                    ref_list.append(refs[uid])
            if failed:
                print(f"{n} streams: {len(failed)} client(s) failed, e.g. {type(failed[0]).__name__}: {failed[0]}",
                      flush=True)
            lat_ms = sorted(x * 1000 for x in lat) or [float("nan")]
            p50, p95 = statistics.median(lat_ms), lat_ms[int(0.95 * (len(lat_ms) - 1))]
            audio = sum(len(pcms[(c + k) % len(pcms)]) / 32000 for c, t in enumerate(texts) for k in range(len(t)))
            row = (f"| {n}{f' ({len(failed)} failed)' if failed else ''} | {audio:.0f} | "
                   f"{p50:.0f} / {p95:.0f} / {lat_ms[-1]:.0f} | {same}/{total} | "
                   f"{wer(ref_list, hyp_list):.2f} / {wer(ref_list, off_list):.2f} | {cores:.2f} | {mean_batch:.1f} |")
            print(row, flush=True)
            lines.append(row)
        lines += ["", "| upload clients | requests | audio s | wall s | throughput (x real time) | server CPU |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: |"]
        files = [(Path(u.audio).name, Path(u.audio).read_bytes()) for u in utts]
        seconds = {Path(u.audio).name: len(p) / 32000 for u, p in zip(utts, pcms)}
        for c in args.clients:
            per = args.requests_per_client or max(4, 64 // c)

            async def uploads(c: int, per: int):
                return await asyncio.gather(*(upload_client(url, files, per, k * per) for k in range(c)))

            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            asyncio.run(uploads(c, per))
            wall = time.perf_counter() - t0
            audio = sum(seconds[files[(k * per + r) % len(files)][0]] for k in range(c) for r in range(per))
            row = (f"| {c} | {c * per} | {audio:.0f} | {wall:.1f} | {audio / wall:.0f}x | "
                   f"{(cpu_seconds(proc.pid) - cpu0) / wall:.2f} |")
            print(row, flush=True)
            lines.append(row)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
