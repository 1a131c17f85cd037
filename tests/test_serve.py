"""`asr serve` as a real process on loopback: the OpenAI-compatible endpoint through the official `openai` client,
the Vosk-protocol WebSocket through a plain `websockets` client, limits, auth, metrics and SIGTERM drain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio

KEY = "test-key-123"
ASR = [sys.executable, "-m", "asr"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path, *args: str, key: str | None = KEY):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [*ASR, "serve", "--model", str(model), "--port", str(self.port), *args]
        if key:
            cmd += ["--api-key", key]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, self.proc.stderr.read()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


def get(url: str, key: str | None = KEY) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), {k.lower(): v for k, v in e.headers.items()}


def post_file(url: str, data: bytes, name: str = "a.wav", fields: dict | None = None,
              key: str | None = KEY) -> tuple[int, str, dict]:
    boundary = "----asrtestboundary"
    body = b""
    for k, v in (fields or {}).items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url + "/v1/audio/transcriptions", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), {k.lower(): v for k, v in e.headers.items()}


@pytest.fixture(scope="module")
def audio(speech_data, tmp_path_factory):
    """Three digit utterances of a voice the models trained on, as 16 kHz 16-bit WAV files, and one file with
    two of them separated by a second of silence."""
    out = tmp_path_factory.mktemp("serve-audio")
    files = []
    for f in speech_data.digits(speakers=("ava",), takes=range(5, 6), digits=(1, 4, 7)):
        x = load_audio(f)
        path = out / f"{f.stem}.wav"
        sf.write(path, x, 16000, subtype="PCM_16")
        files.append(path)
    a, b = (sf.read(files[i], dtype="float32")[0] for i in (0, 1))
    sf.write(out / "two.wav", np.concatenate([a, np.zeros(16000, np.float32), b]), 16000, subtype="PCM_16")
    return files, out / "two.wav"


@pytest.fixture(scope="module")
def chunked(chunked_digits_model):
    server = Server(chunked_digits_model[1], "--max-upload-mb", "0.5", "--max-audio-s", "8", "--max-streams", "20",
                    "--stream-idle-s", "3")
    yield server, chunked_digits_model[1]
    server.stop()


def offline(model: Path, path: Path):
    from asr.recognizer import Recognizer

    return Recognizer.load(model).transcribe(path)


def pcm_blocks(path: Path, block_s: float = 0.1) -> list[bytes]:
    x, sr = sf.read(path, dtype="int16")
    assert sr == 16000
    step = int(block_s * sr)
    return [x[i:i + step].tobytes() for i in range(0, len(x), step)]


async def vosk_session(url: str, blocks: list[bytes], config: dict | None = None, key: str | None = KEY,
                       delay: float = 0.0) -> tuple[list[dict], list[dict]]:
    """A client as Vosk's own: config, then each binary block waiting for its reply, then eof. Returns the
    replies to the blocks and the final reply."""
    import websockets

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with websockets.connect(url, additional_headers=headers) as ws:
        if config:
            await ws.send(json.dumps({"config": config}))
        replies = []
        for b in blocks:
            await ws.send(b)
            replies.append(json.loads(await ws.recv()))
            if delay:
                await asyncio.sleep(delay)
        await ws.send('{"eof" : 1}')
        final = json.loads(await ws.recv())
        return replies, [final]


def texts_of(replies: list[dict]) -> str:
    return " ".join(r["text"] for r in replies if r.get("text"))


def symbols(text: str) -> str:
    """The recognised characters without word boundaries: a segment that ends at a pause also ends a word,
    where the offline greedy text of a small model may have run two words together."""
    return "".join(text.split())


def test_openai_client_every_response_format(chunked, audio):
    import openai

    server, model = chunked
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    path = audio[0][0]
    expected = offline(model, path)
    assert expected.text  # the model recognises something; the server must give the same
    with open(path, "rb") as f:
        r = client.audio.transcriptions.create(model="asr", file=f)
    assert r.text == expected.text
    with open(path, "rb") as f:
        text = client.audio.transcriptions.create(model="asr", file=f, response_format="text")
    assert text.strip() == expected.text
    with open(path, "rb") as f:
        v = client.audio.transcriptions.create(model="asr", file=f, response_format="verbose_json",
                                               timestamp_granularities=["word", "segment"])
    assert v.text == expected.text and abs(v.duration - expected.duration) < 1e-3
    assert [w.word for w in v.words] == expected.text.split()
    assert all(0 <= w.start <= w.end <= v.duration + 1e-3 for w in v.words)
    assert v.segments and v.segments[0].text
    for fmt, head in (("srt", "1\n00:00:0"), ("vtt", "WEBVTT")):
        with open(path, "rb") as f:
            sub = client.audio.transcriptions.create(model="asr", file=f, response_format=fmt)
        assert sub.startswith(head) and expected.text.split()[0] in sub


def test_http_errors_have_openai_shape_and_the_server_keeps_serving(chunked, audio, tmp_path):
    import openai

    server, model = chunked
    wav = audio[0][0].read_bytes()
    # auth: missing or wrong key is 401 everywhere but /healthz
    assert get(server.url + "/healthz", key=None)[0] == 200
    for url in ("/metrics", "/", "/v1/models"):
        assert get(server.url + url, key=None)[0] == 401
        assert get(server.url + url, key="wrong")[0] == 401
    status, body, _ = post_file(server.url, wav, key="wrong")
    assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.audio.transcriptions.create(model="asr", file=("a.wav", wav))
    # undecodable audio: 4xx with the decoder's reason, naming the upload
    status, body, _ = post_file(server.url, os.urandom(3000), name="noise.wav")
    err = json.loads(body)["error"]
    assert status in (400, 415) and "noise.wav" in err["message"] and "cannot decode audio" in err["message"]
    assert err["param"] == "file"
    # an empty file, a bad format, a missing file field
    assert post_file(server.url, b"", name="empty.wav")[0] in (400, 415)
    status, body, _ = post_file(server.url, wav, fields={"response_format": "mp3"})
    assert status == 400 and "response_format" in json.loads(body)["error"]["message"]
    status, body, _ = post_file(server.url, wav, fields={"timestamp_granularities[]": "letter"})
    assert status == 400
    # too large a body (the fixture's limit is 0.5 MB), too long audio (limit 8 s, in a small FLAC file)
    status, body, _ = post_file(server.url, b"\0" * 700_000)
    assert status == 413 and json.loads(body)["error"]["code"] == "file_too_large"
    long = tmp_path / "long.flac"
    sf.write(long, np.zeros(16000 * 10, np.float32), 16000, format="FLAC")
    status, body, _ = post_file(server.url, long.read_bytes(), name="long.flac")
    assert status == 413 and "over the 8 s limit" in json.loads(body)["error"]["message"]
    # another rate, stereo: still transcribed
    x, _ = sf.read(audio[0][0], dtype="float32")
    other = tmp_path / "stereo44.wav"
    import torch
    import torchaudio

    y = torchaudio.functional.resample(torch.from_numpy(x), 16000, 44100).numpy()
    sf.write(other, np.stack([y, y], axis=1), 44100)
    status, body, _ = post_file(server.url, other.read_bytes(), name="stereo44.wav")
    assert status == 200 and json.loads(body)["text"] == offline(model, other).text
    # after all that, the normal request still works, and /metrics counted it all
    status, body, _ = post_file(server.url, wav)
    assert status == 200 and json.loads(body)["text"] == offline(model, audio[0][0]).text
    status, metrics, _ = get(server.url + "/metrics")
    assert status == 200
    assert 'asr_requests_total{endpoint="transcriptions",status="413"} 2' in metrics
    assert 'asr_requests_total{endpoint="transcriptions",status="401"}' in metrics
    assert "asr_audio_seconds_total" in metrics and "asr_batch_size_count" in metrics


def test_vosk_protocol_session_matches_offline(chunked, audio):
    server, model = chunked
    ws = server.url.replace("http", "ws")
    for path in (*audio[0], audio[1]):
        expected = offline(model, path).text
        for url in (ws + "/ws", ws):  # Vosk's own clients connect to the root URL
            replies, final = asyncio.run(vosk_session(url, pcm_blocks(path), {"sample_rate": 16000}))
            assert all(("partial" in r) != ("text" in r) for r in replies)  # one reply per block, of one kind
            assert symbols(texts_of(replies + final)) == symbols(expected), (replies, final)
            words = [w for r in replies + final for w in r.get("result", [])]
            assert symbols(" ".join(w["word"] for w in words)) == symbols(expected)
            assert all(set(w) == {"word", "start", "end", "conf"} and 0 <= w["start"] <= w["end"] for w in words)
            assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    # the two-utterance file: a partial as the chunks arrive, and the first segment ends at the pause
    replies, final = asyncio.run(vosk_session(ws + "/ws", pcm_blocks(audio[1])))
    assert any(r.get("partial") for r in replies)
    assert sum(1 for r in replies + final if r.get("text")) == 2, (replies, final)


def test_sixteen_simultaneous_streams_give_the_sequential_texts(chunked, audio):
    server, _ = chunked
    ws = server.url.replace("http", "ws") + "/ws"
    files = [*audio[0], audio[1]] * 4
    sequential = [texts_of(sum(asyncio.run(vosk_session(ws, pcm_blocks(f))), [])) for f in files]

    async def together():
        return await asyncio.gather(*(vosk_session(ws, pcm_blocks(f)) for f in files))

    parallel = [texts_of(r + f) for r, f in asyncio.run(together())]
    assert parallel == sequential
    _, metrics, _ = get(server.url + "/metrics")
    sizes = {int(line.split('le="')[1].split('"')[0]): int(line.split()[-1]) for line in metrics.splitlines()
             if line.startswith("asr_batch_size_bucket") and "+Inf" not in line}
    count = int(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("asr_batch_size_count")))
    assert count > sizes[1], "no forward pass ever batched two streams"


def test_websocket_bad_input_gets_an_error_then_close_and_others_go_on(chunked, audio):
    import websockets

    server, model = chunked
    ws = server.url.replace("http", "ws") + "/ws"
    auth = {"Authorization": f"Bearer {KEY}"}

    async def scenario():
        out = {}
        async with websockets.connect(ws, additional_headers=auth) as c:  # malformed JSON
            await c.send("{not json")
            out["malformed"] = json.loads(await c.recv())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await c.recv()
            out["malformed_code"] = closed.value.rcvd.code
        async with websockets.connect(ws, additional_headers=auth) as c:  # a bad sample rate
            await c.send(json.dumps({"config": {"sample_rate": "fast"}}))
            out["config"] = json.loads(await c.recv())
        async with websockets.connect(ws, additional_headers=auth) as c:  # idle (the fixture's limit is 3 s)
            t0 = time.monotonic()
            out["idle"] = json.loads(await c.recv())
            out["idle_s"] = time.monotonic() - t0
        with pytest.raises(websockets.InvalidStatus) as denied:  # no key
            async with websockets.connect(ws):
                pass
        out["noauth"] = denied.value.response.status_code
        return out

    out = asyncio.run(scenario())
    assert "malformed message" in out["malformed"]["error"] and out["malformed_code"] == 1007
    assert "sample_rate" in out["config"]["error"]
    assert "no data for 3 s" in out["idle"]["error"] and 2.5 < out["idle_s"] < 30
    assert out["noauth"] == 401
    # an odd number of bytes in a block is carried over, not an error; the session still matches offline
    blocks = pcm_blocks(audio[0][1])
    joined = b"".join(blocks)
    odd = [joined[i:i + 3201] for i in range(0, len(joined), 3201)]
    replies, final = asyncio.run(vosk_session(ws, odd))
    assert symbols(texts_of(replies + final)) == symbols(offline(model, audio[0][1]).text)


def test_too_many_streams_get_503_with_retry_after(chunked_digits_model, audio):
    import websockets

    server = Server(chunked_digits_model[1], "--max-streams", "2", key=None)
    try:
        async def scenario():
            url = server.url.replace("http", "ws") + "/ws"
            async with websockets.connect(url), websockets.connect(url):
                with pytest.raises(websockets.InvalidStatus) as denied:
                    async with websockets.connect(url):
                        pass
            async with websockets.connect(url) as c:  # room again once the others closed
                await c.send('{"eof": 1}')
                final = json.loads(await c.recv())
            return denied.value.response, final

        response, final = asyncio.run(scenario())
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert final == {"text": "", "result": []}
    finally:
        server.stop()


def test_full_context_model_streams_segments_at_pauses(digits_model, audio):
    """A model without chunks gives one {text, result} per pause-delimited segment, its words timed from the
    start of the stream. (Each segment is recognised with the silence around it, so a weak model's text can
    differ from that of the utterance's own file: the test checks the segmentation and the times.)"""
    server = Server(digits_model[1], key=None)
    try:
        ws = server.url.replace("http", "ws")
        replies, final = asyncio.run(vosk_session(ws, pcm_blocks(audio[1])))
        segments = [r for r in replies + final if r.get("text")]
        assert len(segments) == 2, replies + final
        first_end = sf.info(audio[0][0]).duration  # the first utterance, then 1 s of silence, then the second
        assert all(w["end"] <= first_end + 0.1 for w in segments[0]["result"])
        # times count from the start of the stream (a weak model's CTC peaks are only roughly placed)
        assert all(w["start"] > first_end for w in segments[1]["result"]), (first_end, segments)
        assert all(len(s["result"]) == len(s["text"].split()) for s in segments)
        assert all("partial" in r or "text" in r for r in replies)
    finally:
        server.stop()


def test_sigterm_drains_streams_and_requests_then_exits_zero(chunked_digits_model, audio):
    server = Server(chunked_digits_model[1], key=None)
    model = chunked_digits_model[1]
    blocks = pcm_blocks(audio[0][2])

    async def scenario():
        import websockets

        url = server.url.replace("http", "ws") + "/ws"
        async with websockets.connect(url) as c:
            replies = []
            for i, b in enumerate(blocks):
                if i == 2:
                    server.proc.send_signal(signal.SIGTERM)
                    await asyncio.sleep(0.5)
                    # while draining: new streams and requests are refused, the open stream goes on
                    with pytest.raises(websockets.InvalidStatus) as denied:
                        async with websockets.connect(url):
                            pass
                    refused = denied.value.response.status_code
                    http = await asyncio.to_thread(post_file, server.url, audio[0][0].read_bytes(), key=None)
                await c.send(b)
                replies.append(json.loads(await c.recv()))
            await c.send('{"eof": 1}')
            final = json.loads(await c.recv())
        return replies, final, refused, http

    try:
        replies, final, refused, http = asyncio.run(scenario())
        assert symbols(texts_of(replies + [final])) == symbols(offline(model, audio[0][2]).text)
        assert refused == 503 and http[0] == 503 and "retry-after" in http[2]
        rc = server.proc.wait(timeout=60)  # exits by itself once the stream is done
        err = server.proc.stderr.read()
        assert rc == 0, err
        assert "draining 0 request(s) and 1 stream(s)" in err and "asr serve: stopped" in err
    finally:
        server.stop()


def test_access_log_is_json_lines(chunked_digits_model, audio):
    server = Server(chunked_digits_model[1], key=None)
    post_file(server.url, audio[0][0].read_bytes(), key=None)
    asyncio.run(vosk_session(server.url.replace("http", "ws") + "/ws", pcm_blocks(audio[0][0]), key=None))
    err = server.stop()
    entries = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(e.get("path") == "/v1/audio/transcriptions" and e["status"] == 200 and e["ms"] > 0 for e in entries)
    assert any(e.get("websocket") == "eof" and e["audio_s"] > 0 for e in entries)


def test_serve_refuses_bad_limits_and_missing_model(tmp_path):
    r = subprocess.run([*ASR, "serve", "--model", str(tmp_path / "none.pt"), "--max-streams", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--max-streams must be a positive number" in r.stderr
    r = subprocess.run([*ASR, "serve", "--model", str(tmp_path / "none.pt")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "none.pt" in r.stderr and "Traceback" not in r.stderr
