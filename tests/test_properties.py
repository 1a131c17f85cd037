"""Property-based tests (hypothesis) of the readers of outside input: whatever the bytes, a manifest line, a
config override, an ARPA file, a lexicon or an audio file gives either a result or the module's own error
with a message naming the file or key, never another exception."""

import io
import json

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr.audio import AudioError, read_blocks
from asr.config import ConfigError, load_config
from asr.lm import LmError, check_arpa, check_lexicon
from asr.manifest import ManifestError, read_manifest

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# (no subnormal floats: training tests earlier in the run flush them to zero process-wide, see asr.model)
SCALARS = st.none() | st.booleans() | st.floats(allow_subnormal=False) | st.integers() | st.text(max_size=8)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@SETTINGS
@given(st.one_of(st.binary(max_size=200),
                 st.dictionaries(st.sampled_from(["id", "audio", "duration", "speaker", "text", "x"]), JSON_VALUES,
                                 max_size=6).map(lambda d: json.dumps(d).encode())))
def test_any_manifest_line_is_an_utterance_or_a_manifest_error_naming_the_line(tmp_path, line):
    path = tmp_path / "m.jsonl"
    path.write_bytes(line + b"\n")
    try:
        utts = read_manifest(path)
    except ManifestError as exc:
        assert str(exc).startswith(str(path))
        return
    assert len(utts) == 1 and utts[0].duration > 0 and np.isfinite(utts[0].duration)


@SETTINGS
@given(st.sampled_from(["train.epochs", "train.lr", "train.exp_dir", "features.n_mels", "features.speed_perturb",
                        "model.bidirectional", "model.rnn_type", "data.num_workers", "train.max_steps"]),
       st.one_of(st.text(max_size=12), st.sampled_from(["true", "null", ".inf", "-1", "0", "[1, 2]", "{a: 1}",
                                                        "1e309", "nan", "3.5"])))
def test_any_override_value_is_a_config_or_a_config_error(key, value):
    try:
        cfg = load_config(None, [f"{key}={value}"])
    except ConfigError:
        return
    section, name = key.split(".")
    assert getattr(getattr(cfg, section), name) is not None


@SETTINGS
@given(st.lists(st.sampled_from(["\\data\\", "ngram 1=2", "ngram 2=1", "ngram x=y", "\\1-grams:", "\\2-grams:",
                                 "\\x-grams:", "-0.5\tHELLO", "-0.5\tHELLO WORLD", "nan\tA", "junk", "\\end\\", ""]),
                max_size=12))
def test_any_arpa_text_is_checked_or_an_lm_error_naming_the_file(tmp_path, lines):
    path = tmp_path / f"lm{abs(hash(tuple(lines)))}.arpa"
    path.write_text("\n".join(lines) + "\n")
    try:
        counts = check_arpa(path)
    except LmError as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(k, int) and v >= 0 for k, v in counts.items())


@SETTINGS
@given(st.binary(max_size=120))
def test_any_lexicon_bytes_are_accepted_or_an_lm_error(tmp_path, data):
    path = tmp_path / "lexicon.txt"
    path.write_bytes(data)
    try:
        check_lexicon(path, ["-", "|", "A", "B", "C"])
    except LmError as exc:
        assert str(path) in str(exc)


@SETTINGS
@given(st.one_of(st.binary(max_size=300),
                 st.tuples(st.integers(0, 3000), st.sampled_from([8000, 16000, 22050, 44100]), st.integers(1, 3),
                           st.sampled_from([("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")]))))
def test_any_audio_input_gives_samples_or_an_audio_error(source):
    if isinstance(source, bytes):
        f = io.BytesIO(source)
    else:
        n, sr, channels, (fmt, subtype) = source
        f = io.BytesIO()
        data = np.random.default_rng(n).uniform(-0.5, 0.5, (n, channels)).astype(np.float32)
        try:
            sf.write(f, data, sr, format=fmt, subtype=subtype)
        except Exception:  # libsndfile cannot write every combination (e.g. no samples in Vorbis)
            return
        f.seek(0)
    try:
        blocks = list(read_blocks(f))
    except AudioError as exc:
        assert str(exc).startswith("<stdin>: ")
        return
    assert all(b.dtype == np.float32 and b.ndim == 1 and np.isfinite(b).all() for b in blocks)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 44, b"RIFF\x24\x00\x00\x00WAVEfmt "])
def test_known_bad_audio_is_an_audio_error(bad):
    with pytest.raises(AudioError, match="^<stdin>: "):
        list(read_blocks(io.BytesIO(bad)))
