"""`asr serve`'s web page in a real headless browser: Debian's chromium driven by Playwright, its microphone a
fake capture device playing a WAV file. The page is opened as `/?api_key=KEY` on a server that requires the
key, so the page must pass the key on to its WebSocket and its uploads; the microphone path goes through the
page's AudioWorklet (resampling the browser's rate to 16 kHz 16-bit PCM) and the Vosk-protocol WebSocket: the
PCM it sends must be the played file's samples, and the transcript it shows the offline transcript of that
audio.

Set ASR_PAGE_SCREENSHOT=path to also save a screenshot of the page after an upload and a recording (how
docs/serve-page.png was made)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import soundfile as sf
from test_serve import KEY, Server, offline

from asr.audio import load_audio

CHROMIUM = "/usr/bin/chromium"
SR = 16000
LEAD = 2.0  # seconds of silence the fake microphone plays before the speech


@pytest.fixture(scope="module")
def clips(speech_data, tmp_path_factory):
    """(one digit as a 16 kHz WAV for uploads, the microphone's recording): the recording is three digits with
    a second of silence between them (each ends a streamed segment), LEAD seconds of silence before (the
    page's start-up time: the fake device starts playing when the page asks for the microphone, the page
    streams once its worklet and WebSocket are ready) and 1 s after."""
    out = tmp_path_factory.mktemp("browser-audio")
    xs = [load_audio(f) for f in speech_data.digits(speakers=("ava",), takes=range(5, 6), digits=(1, 4, 7))]
    one = out / "one.wav"
    sf.write(one, xs[0], SR, subtype="PCM_16")
    gap = np.zeros(SR, np.float32)
    mic = out / "mic.wav"
    sf.write(mic, np.concatenate([np.zeros(int(LEAD * SR), np.float32), xs[0], gap, xs[1], gap, xs[2], gap]), SR,
             subtype="PCM_16")
    return one, mic


@pytest.fixture(scope="module")
def server(chunked_digits_model):
    server = Server(chunked_digits_model[1], "--max-streams", "1")  # requires KEY
    yield server, chunked_digits_model[1]
    server.stop()


@pytest.fixture(scope="module")
def browser(clips):
    from playwright.sync_api import sync_playwright

    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={clips[1]}%noloop"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """The page opened as /?api_key=KEY; every request it makes is recorded in `page.requests`, and every
    uncaught script error in `page.script_errors` (none allowed)."""
    context = browser.new_context(viewport={"width": 900, "height": 600})
    context.grant_permissions(["microphone"])
    page = context.new_page()
    page.requests, page.script_errors = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.script_errors.append(str(e)))
    page.set_default_timeout(30_000)
    response = page.goto(f"{server[0].url}/?api_key={KEY}")
    assert response.status == 200
    yield page
    assert page.script_errors == []
    context.close()


def shown_words(page) -> list[list[str]]:
    return page.eval_on_selector_all("#words tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def same_rows(rows: list[list[str]], words: list[tuple[str, float, float, float]]) -> bool:
    """The table's rows show `words` (word, start, end, confidence; numbers to 2 decimals)."""
    return len(rows) == len(words) and all(
        r[0] == w[0] and all(abs(float(a) - b) < 0.0051 for a, b in zip(r[1:], w[1:])) for r, w in zip(rows, words))


def test_page_loads_with_the_key_and_everything_it_needs_is_ours(page, server):
    url = server[0].url
    assert page.title().startswith("asr")
    assert page.goto(url + "/").status == 401  # the page itself needs the key
    page.goto(f"{url}/?api_key={KEY}")
    for sel in ("#record", "#stop", "#file", "#partial", "#final", "#file-text", "#words", "#status"):
        assert page.locator(sel).count() == 1, sel
    assert page.locator("#record").is_enabled() and page.locator("#stop").is_disabled()
    assert page.locator("#error").is_hidden()
    assert page.get_attribute("#final", "aria-live") == "polite"
    assert page.get_attribute("#file-text", "aria-live") == "polite"
    assert page.locator("label[for=file]").count() == 1
    assert all(r.startswith(url + "/") for r in page.requests), page.requests  # no CDNs, nothing external
    worklet = page.request.get(url + "/static/pcm-worklet.js")
    assert worklet.ok and "registerProcessor" in worklet.text()


def test_a_chosen_file_shows_the_offline_transcript_and_word_timings(page, server, clips):
    _, model = server
    expected = offline(model, clips[0])
    assert expected.text  # the model recognises something; the page must show the same
    page.set_input_files("#file", clips[0])
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Transcribed')")
    assert page.text_content("#file-text") == expected.text
    rows = shown_words(page)
    assert same_rows(rows, [(w.word, w.start, w.end, float(w.score)) for w in expected.words]), rows
    assert page.locator("#error").is_hidden()
    assert any("/v1/audio/transcriptions" in r for r in page.requests)


def test_an_undecodable_file_shows_the_servers_error(page):
    page.set_input_files("#file", {"name": "noise.wav", "mimeType": "audio/wav", "buffer": os.urandom(3000)})
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "noise.wav" in error.text_content() and "cannot decode audio" in error.text_content()
    assert page.text_content("#file-text") == ""


def aligned(sent: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """Where the captured `sent` starts in `ref` (in samples, to 1/400 of one: the browser's capture need not
    start on a 16 kHz sample), and how close it is to `ref` there: (lag, SNR in dB, gain) over the part both
    cover."""
    n = 1 << int(np.ceil(np.log2(len(sent) + len(ref))))
    spec, f = np.fft.rfft(ref, n), np.fft.rfftfreq(n)
    corr = np.fft.irfft(np.conj(np.fft.rfft(sent, n)) * spec, n)  # corr[k] = sum_i sent[i] ref[i + k]
    best = (float(np.argmax(corr[: len(ref)])), -np.inf, 0.0)
    m = min(len(sent), len(ref) - int(best[0]) - 1)
    for step in (0.1, 0.0025):  # a grid around the best lag so far, then a finer one
        for lag in best[0] + step * np.arange(-10, 11):
            shifted = np.fft.irfft(spec * np.exp(2j * np.pi * f * lag), n)[:m]  # ref[i + lag], band-limited
            snr = 10 * np.log10(np.sum(shifted ** 2) / np.sum((sent[:m] - shifted) ** 2))
            if snr > best[1]:
                best = (float(lag), float(snr), float(np.dot(sent[:m], shifted) / np.dot(shifted, shifted)))
    return best


def test_recording_streams_the_microphone_and_shows_the_offline_words(page, server, clips, tmp_path):
    _, model = server
    ref, _ = sf.read(clips[1], dtype="float32")
    sent, received = [], []  # what the page sends and receives on its WebSocket

    def watch(ws):
        ws.on("framesent", lambda frame: sent.append(frame))
        ws.on("framereceived", lambda frame: received.append(frame))

    page.on("websocket", watch)
    page.evaluate("""() => { window.partials = [];  // every text #partial shows
        new MutationObserver(() => window.partials.push(document.querySelector('#partial').textContent))
            .observe(document.querySelector('#partial'), {childList: true, characterData: true, subtree: true}); }""")
    shot = os.environ.get("ASR_PAGE_SCREENSHOT")
    if shot:  # the docs' picture (taken at the end) shows a file transcribed as well
        page.set_input_files("#file", clips[0])
        page.wait_for_function("document.querySelector('#status').textContent.startsWith('Transcribed')")
    page.click("#record")
    page.wait_for_function("!document.querySelector('#stop').disabled || !document.querySelector('#error').hidden")
    assert page.locator("#error").is_hidden(), page.text_content("#error")
    assert "Recording" in page.text_content("#status")
    # Stop once the page has sent as much audio as the file holds (it started at most LEAD s in): the whole
    # file, its last pause included, has gone out. Stop flushes the worklet, sends {"eof": 1}, shows the reply.
    deadline = time.monotonic() + len(ref) / SR + 10
    while sum(len(b) for b in sent if isinstance(b, bytes)) < 2 * len(ref):
        assert time.monotonic() < deadline, f"the page sent only {len(sent)} messages"
        page.wait_for_timeout(100)
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status').textContent === 'Done.'")
    assert page.locator("#error").is_hidden(), page.text_content("#error")
    assert page.locator("#record").is_enabled() and page.locator("#stop").is_disabled()

    # the messages: config, 100 ms blocks of 16-bit PCM (the last, flushed at Stop, shorter), eof
    assert json.loads(sent[0]) == {"config": {"sample_rate": 16000}} and json.loads(sent[-1]) == {"eof": 1}
    blocks = sent[1:-1]
    assert all(isinstance(b, bytes) and len(b) == 3200 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 3200
    pcm = np.frombuffer(b"".join(blocks), "<i2").astype(np.float32) / 32768

    # the audio is the file's: Chromium's fake microphone plays it at the browser's rate (44.1 or 48 kHz) and
    # the page's worklet resamples it back to 16 kHz; it starts where the file had reached when the page
    # began to stream (within the leading silence), and matches the file sample for sample (measured 45-70 dB;
    # a wrong rate, byte order, scale, lost or repeated blocks give well under 20 dB)
    lag, snr, gain = aligned(pcm, ref)
    assert 0 <= lag < LEAD * SR and snr > 30 and abs(gain - 1) < 0.01, (lag / SR, snr, gain)

    # the transcript. Exact equality with the offline transcript of the file is impossible here: the stream
    # begins at a random point of the file (the page's start-up time), and this tiny model's output depends
    # on where its 10 ms frames and 120 ms chunks fall (offline recognition of the same file cut a few
    # hundred ms later differs too, e.g. FOUR → FUR). So the page must show exactly the offline transcript of
    # the audio it sent; offline recognition runs the file as one piece, and this model has never seen a
    # space, so its text is one word where the stream ends a segment (and a word) at each pause: compared
    # without spaces. And the segments are the spoken digits.
    sent_wav = tmp_path / "sent.wav"
    sf.write(sent_wav, pcm, SR, subtype="PCM_16")
    expected = offline(model, sent_wav).text
    final = page.text_content("#final")
    assert final.replace(" ", "") == expected.replace(" ", "") != "", (final, expected)
    assert len(final.split()) == 3, final  # one segment per digit: ended at each pause
    # the page shows what the server said: the texts of the segments, each word's timing, live partials
    replies = [json.loads(r) for r in received]
    assert len(replies) == len(blocks) + 1  # one reply per block, one to eof
    assert final == " ".join(r["text"] for r in replies if r.get("text"))
    words = [w for r in replies for w in r.get("result", [])]
    assert same_rows(shown_words(page), [(w["word"], w["start"], w["end"], w["conf"]) for w in words])
    assert [w["word"] for w in words] == final.split()
    assert all(0 <= w["start"] <= w["end"] <= len(pcm) / SR for w in words)
    shown = [p for p in page.evaluate("window.partials") if p]
    assert shown and set(shown) <= {r["partial"] for r in replies if "partial" in r}

    if shot:
        page.screenshot(path=shot)


def test_a_refused_stream_is_shown(page, server):
    """The server's only stream slot (--max-streams 1) is taken: Record shows why nothing happens."""
    from websockets.sync.client import connect

    with connect(server[0].url.replace("http", "ws") + "/ws", additional_headers={"Authorization": f"Bearer {KEY}"}):
        page.click("#record")
        error = page.locator("#error")
        error.wait_for(state="visible")
        assert "could not open the streaming connection" in error.text_content()
    assert page.locator("#record").is_enabled() and page.locator("#stop").is_disabled()
