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


def _at(x: np.ndarray, spec: np.ndarray, f: np.ndarray, n: int, lag: float) -> tuple[float, float]:
    """(SNR in dB, gain) of `x` against the signal whose spectrum is `spec`, read from `lag` on (band-limited,
    so a fractional lag works)."""
    shifted = np.fft.irfft(spec * np.exp(2j * np.pi * f * lag), n)[: len(x)]
    err = max(float(np.sum((x - shifted) ** 2)), 1e-20)
    return 10 * np.log10(float(np.sum(shifted ** 2)) / err), float(np.dot(x, shifted) / np.dot(shifted, shifted))


def fit(x: np.ndarray, ref: np.ndarray, guess: float, reach: int) -> tuple[float, float, float]:
    """Where `x` best matches `ref` within `reach` samples of `guess` (to 1/400 of a sample: the browser's
    capture need not start on a 16 kHz sample): (lag, SNR in dB, gain), x[i] ~ gain * ref[i + lag]."""
    lo = max(0, int(guess) - reach)
    seg = ref[lo: int(guess) + reach + len(x) + 64]
    if len(seg) < len(x) + 64:
        return guess, -np.inf, 0.0
    n = 1 << int(np.ceil(np.log2(len(seg) + len(x))))
    spec, f = np.fft.rfft(seg, n), np.fft.rfftfreq(n)
    corr = np.fft.irfft(np.conj(np.fft.rfft(x, n)) * spec, n)[: len(seg) - len(x) - 32]
    # the correlation's peak, or the guess (a quiet piece's peak can be a wrong one)
    best = max(((float(k), *_at(x, spec, f, n, k)) for k in (float(np.argmax(corr)), float(round(guess - lo)))),
               key=lambda b: b[1])
    for step in (0.1, 0.0025):  # a grid around the best lag so far, then a finer one
        for k in best[0] + step * np.arange(-10, 11):
            snr, gain = _at(x, spec, f, n, k)
            if snr > best[1]:
                best = (float(k), snr, gain)
    return best[0] + lo, best[1], best[2]


PIECE = 4000  # samples (250 ms): not a multiple of the page's 1,600-sample blocks


def pieces(sent: np.ndarray, ref: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Each 250 ms piece of `sent` that holds speech, matched to `ref` near where the piece before it matched
    (anywhere in `ref` until one has): (start in s, lag in samples, SNR in dB, gain)."""
    lag, out = None, []
    for s in range(0, len(sent) - PIECE + 1, PIECE):
        x = sent[s: s + PIECE]
        if np.sqrt(np.mean(x ** 2)) < 0.01:
            continue
        k, snr, gain = fit(x, ref, s, reach=len(ref)) if lag is None else fit(x, ref, s + lag, reach=2 * PIECE)
        if snr > 30:
            lag = k - s
        out.append((s / SR, k - s, snr, gain))
    return out


def test_the_match_of_sent_audio_tells_browser_glitches_from_broken_pcm(clips):
    """What the recording test accepts and refuses, on the file itself: the exact audio, and audio with two
    glitches of the kind a late browser audio thread makes (50 ms lost, 30 ms of silence put in), pass; a wrong
    rate, a wrong scale, swapped bytes and every fifth 100 ms block lost fail."""
    ref, _ = sf.read(clips[1], dtype="float32")
    late = ref[int(0.3 * SR):]
    a, b = len(late) * 4 // 10, len(late) * 7 // 10
    glitched = np.concatenate([late[:a], late[a + 800: b], np.zeros(480, np.float32), late[b:]])
    assert matches(pieces(late, ref))[0] and matches(pieces(glitched, ref))[0]
    t = np.arange(int(len(late) * 147 / 160)) * 160 / 147
    wrong_rate = np.interp(t, np.arange(len(late)), late).astype(np.float32)
    swapped = (np.round(late * 32768).astype("<i2").byteswap().astype(np.float32) / 32768)
    blocks = [late[i: i + 1600] for i in range(0, len(late), 1600)]
    lost = np.concatenate([x for i, x in enumerate(blocks) if i % 5 != 3])
    for bad in (wrong_rate, 0.9 * late, swapped, lost):
        assert not matches(pieces(bad, ref))[0]


def matches(found: list[tuple[float, float, float, float]]) -> tuple[bool, str]:
    """Whether the pieces say the audio is the file's: at least 70 % of the speech pieces match it sample for
    sample (over 30 dB, gain within 1 %), the first one starts within the file's leading silence, and they
    match it at no more than three different lags (each change, a glitch of the browser's audio). With the
    pieces, for the failure message."""
    good = [p for p in found if p[2] > 30 and abs(p[3] - 1) < 0.01]
    lags = {round(p[1]) for p in good}
    ok = (len(found) >= 4 and len(good) >= 0.7 * len(found) and 0 <= good[0][1] < LEAD * SR
          and len(lags) <= 3) if good else False
    return ok, "\n".join(f"{s:.2f} s: lag {k / SR:.3f} s, {snr:.1f} dB, gain {g:.3f}" for s, k, snr, g in found)


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
    # a wrong rate, byte order, scale, lost or repeated blocks give well under 20 dB). Compared piece by
    # piece, so that a few ms lost or padded by the browser's own audio threads when they run late (our guess
    # at why CI once saw the whole recording match at 2-7 dB at one lag; not reproduced here) fail no piece
    # but the one it falls in, which our page could neither cause nor mend.
    ok, found = matches(pieces(pcm, ref))
    assert ok, found

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
