// AudioWorkletProcessor for asr serve's page: microphone audio (the AudioContext's rate; the node is made with
// channelCount 1, so the browser mixes the input down to mono) →
// 16 kHz mono 16-bit little-endian PCM, posted to the page in blocks of `blockSamples` (100 ms by default).
// Resampling is band-limited: a Blackman-windowed sinc low-pass just under the output's Nyquist frequency,
// evaluated at each output instant (any input rate: 48000, 44100, 16000, ...).
// Messages from the page: "flush" → posts the rest (a last, shorter block) and then {done: true}.

const OUT_RATE = 16000;
const ZEROS = 16; // half-width of the kernel in output samples (lobes of the sinc on each side)
const RES = 256; // kernel table points per input sample

class Resampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate; // input samples per output sample
    this.identity = inRate === outRate;
    const cutoff = (0.92 * 0.5 * Math.min(outRate, inRate)) / inRate; // cycles per input sample
    this.half = Math.ceil(ZEROS * Math.max(1, this.step)); // half-width of the kernel in input samples
    // the kernel tabulated at RES points per input sample (looked up with linear interpolation)
    this.table = new Float32Array(this.half * RES + 2);
    for (let j = 0; j < this.table.length; j++) {
      const t = j / RES;
      const x = 2 * cutoff * t;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const w = Math.min(1, t / this.half); // Blackman window, zero at |t| = half
      this.table[j] = 2 * cutoff * sinc * (0.42 + 0.5 * Math.cos(Math.PI * w) + 0.08 * Math.cos(2 * Math.PI * w));
    }
    this.buf = new Float32Array(0); // input not yet consumed; buf[0] is input sample number `base`
    this.base = 0;
    this.pos = 0; // the next output instant, in input samples
    this.seen = 0; // input samples pushed
    this.made = 0; // output samples returned
  }

  kernel(t) {
    const u = Math.abs(t) * RES;
    const j = Math.floor(u);
    if (j >= this.table.length - 1) return 0;
    return this.table[j] + (u - j) * (this.table[j + 1] - this.table[j]);
  }

  // Appends `input` (Float32Array) and returns the output samples it completes (Float32Array).
  push(input) {
    this.seen += input.length;
    if (this.identity) {
      this.made += input.length;
      return input.slice();
    }
    const held = new Float32Array(this.buf.length + input.length);
    held.set(this.buf);
    held.set(input, this.buf.length);
    const end = this.base + held.length; // one past the last input sample held
    const out = [];
    while (this.pos + this.half < end) {
      let sum = 0;
      let norm = 0;
      const last = Math.floor(this.pos + this.half);
      for (let i = Math.max(0, Math.ceil(this.pos - this.half)); i <= last; i++) {
        const h = this.kernel(i - this.pos);
        norm += h;
        if (i >= this.base) sum += h * held[i - this.base];
      }
      out.push(norm ? sum / norm : 0); // normalised: unit gain at DC wherever the taps fall
      this.pos += this.step;
    }
    const keep = Math.max(this.base, Math.floor(this.pos - this.half));
    this.buf = held.slice(keep - this.base);
    this.base = keep;
    this.made += out.length;
    return Float32Array.from(out);
  }

  // The outputs still owed for the input so far (its end padded with silence).
  flush() {
    const owed = Math.ceil(this.seen / this.step) - this.made;
    const out = this.identity ? new Float32Array(0) : this.push(new Float32Array(this.half + 1));
    return out.subarray(0, Math.max(0, owed));
  }
}

class PcmWorklet extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.blockSamples = opts.blockSamples || OUT_RATE / 10;
    this.resampler = new Resampler(sampleRate, OUT_RATE); // `sampleRate`: the AudioContext's, a worklet global
    this.block = new DataView(new ArrayBuffer(this.blockSamples * 2));
    this.filled = 0;
    this.running = true;
    this.port.onmessage = (e) => {
      if (e.data === "flush" && this.running) {
        this.running = false;
        this.emit(this.resampler.flush());
        this.send();
        this.port.postMessage({ done: true });
      }
    };
  }

  send() {
    if (this.filled === 0) return;
    const pcm = this.block.buffer.slice(0, this.filled * 2);
    this.port.postMessage({ pcm }, [pcm]);
    this.filled = 0;
  }

  emit(samples) {
    for (let i = 0; i < samples.length; i++) {
      const v = Math.round(samples[i] * 32768); // the server reads int16 / 32768
      this.block.setInt16(2 * this.filled++, Math.max(-32768, Math.min(32767, v)), true); // little-endian
      if (this.filled === this.blockSamples) this.send();
    }
  }

  process(inputs) {
    if (!this.running) return false;
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.emit(this.resampler.push(channel));
    return true;
  }
}

registerProcessor("pcm-worklet", PcmWorklet);
