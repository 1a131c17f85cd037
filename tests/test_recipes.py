"""Recipes end to end from local sources: option parsing, stage markers (a rerun resumes), RESULTS.md."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asr.bundle import read_bundle
from conftest import REPO
from test_corpus import write_an4

RECIPES = REPO / "recipes"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)


@pytest.fixture
def option_script(tmp_path):
    script = tmp_path / "r.sh"
    script.write_text(f"""#!/usr/bin/env bash
set -euo pipefail
# --- options ---
stage=1           # first stage
stop_stage=8      # last stage
conf=conf/a.yaml  # the config
# --- end options ---
. {RECIPES / 'lib' / 'parse_options.sh'}
echo "stage=$stage stop_stage=$stop_stage conf=$conf"
""")
    return script


def test_parse_options(option_script):
    r = run(["bash", option_script, "--stage", "3", "--stop-stage=5"])
    assert r.returncode == 0 and r.stdout.strip() == "stage=3 stop_stage=5 conf=conf/a.yaml"
    r = run(["bash", option_script, "--stgae", "3"])
    assert r.returncode == 2 and "unknown option --stgae" in r.stderr
    r = run(["bash", option_script, "--conf"])
    assert r.returncode == 2 and "needs a value" in r.stderr
    r = run(["bash", option_script, "extra"])
    assert r.returncode == 2 and "unexpected argument" in r.stderr
    r = run(["bash", option_script, "--help"])
    assert r.returncode == 0
    assert "--stop-stage" in r.stdout and "[8]" in r.stdout and "last stage" in r.stdout
    assert "PATH" not in r.stdout


def test_recipes_reject_unknown_options():
    for recipe in ("fsdd", "librispeech", "an4"):
        r = run(["bash", RECIPES / recipe / "run.sh", "--no-such-option", "1"])
        assert r.returncode == 2 and "unknown option" in r.stderr, recipe
        r = run(["bash", RECIPES / recipe / "run.sh", "--help"])
        assert r.returncode == 0 and "--stage" in r.stdout and "--source" in r.stdout, recipe


def stage_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "] stage " in line]


def test_a_keyed_stage_is_redone_when_its_key_changes(tmp_path):
    script = tmp_path / "keyed.sh"
    script.write_text(f"""#!/usr/bin/env bash
stage=1 stop_stage=8
. {RECIPES / 'lib' / 'template.sh'}
run_stage --key "$1" 3 count {tmp_path} sh -c 'echo run >> {tmp_path}/runs'
run_stage 4 plain {tmp_path} sh -c 'echo plain >> {tmp_path}/runs'
""")
    runs = tmp_path / "runs"
    outs = [run(["bash", script, key]) for key in ("a b", "a b", "a", "a")]
    assert all(r.returncode == 0 for r in outs), [r.stderr for r in outs]
    # key "a b": run; the same key: skipped; key "a": redone; "a" again: skipped. The unkeyed stage runs once.
    assert runs.read_text().split() == ["run", "plain", "run"]
    assert "redone, its inputs changed" in outs[2].stdout
    assert all("stage 3 count: already done" in outs[i].stdout for i in (1, 3))
    assert (tmp_path / ".done" / "stage3.count").read_text().splitlines()[1] == "key: a"


def test_fsdd_recipe_end_to_end_and_resume(speech_data, tmp_path):
    """Both FSDD evaluations with the short CI config (leave-one-speaker-out on two of the speakers), then a
    rerun that skips every finished stage. On the real FSDD when ../shared is there (all 2,500 recordings),
    else on a generated subset."""
    exp = tmp_path / "exp"
    source = speech_data.fsdd_source()
    speakers = sorted({p.stem.split("_")[1] for p in (source / "recordings").glob("*.wav")})
    held_out = speakers[:2]
    base = ["bash", RECIPES / "fsdd" / "run.sh", "--source", source, "--exp", exp,
            "--conf", RECIPES / "fsdd" / "conf" / "ci.yaml"]
    if source.is_relative_to(speech_data.root):  # the generated subset has a sixth of FSDD's training takes
        base += ["--overrides", "train.epochs=10"]
    cmd = base + ["--loso-speakers", " ".join(held_out)]
    r = run(cmd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    done = stage_lines(r.stdout)
    assert any("stage 5 train: done" in line for line in done)
    results = (exp / "conventional" / "RESULTS.md").read_text()
    row = next(line for line in results.splitlines() if line.startswith("| test |"))
    wer = float(row.split("|")[2])
    assert wer < 60.0, results  # ten-way closed-set decoding: chance is 90 % WER
    summary = (exp / "RESULTS-speaker-independent.md").read_text()
    folds = sorted(p.name for p in exp.glob("loso-*"))
    assert folds == [f"loso-{s}" for s in held_out] and all(f in summary for f in folds) and "mean of" in summary
    assert sorted(p.name for p in (exp / "data").glob("loso-*")) == [f"loso-{s}" for s in speakers]
    assert read_bundle(exp / "conventional" / "final.pt")["results"][0]["set"] == "test"
    # rerun: nothing is redone
    r2 = run(cmd)
    assert r2.returncode == 0, r2.stderr[-2000:]
    lines = stage_lines(r2.stdout)
    assert lines and all("already done" in line for line in lines), lines
    # fewer folds: only the summary is redone, and it names only that fold
    r_one = run(base + ["--loso-speakers", held_out[0]])
    assert r_one.returncode == 0, r_one.stderr[-2000:]
    redone = [line for line in stage_lines(r_one.stdout) if "already done" not in line]
    assert len(redone) == 1 and "stage 14 summary: done" in redone[0], stage_lines(r_one.stdout)
    summary = (exp / "RESULTS-speaker-independent.md").read_text()
    assert folds[0] in summary and folds[1] not in summary
    # a speaker the corpus does not have: one clear line, nothing trained
    bad = run(base + ["--loso-speakers", "nobody"])
    assert bad.returncode == 2 and "--loso-speakers: no speaker 'nobody'" in bad.stderr, bad.stderr
    assert all(s in bad.stderr for s in speakers) and not (exp / "loso-nobody").exists()
    # --stage 7 with the score marker removed redoes only scoring
    (exp / "conventional" / ".done" / "stage7.score").unlink()
    r3 = run(cmd + ["--stage", "7", "--stop-stage", "7", "--loso", "false"])
    assert r3.returncode == 0 and [line.split("] ")[1].split(":")[0] for line in stage_lines(r3.stdout)] == [
        "stage 7 score"]


def test_fsdd_recipe_trains_a_model_per_seed_and_decodes_them_together(speech_data, tmp_path):
    """--seeds: a fold trains one model per seed (EXP/FOLD/seed-N, each scored alone), then decodes them together
    (stage 6 ensemble, into EXP/FOLD/decode-ensemble) with --warps; that is the fold's result and the summary's. A bad
    --seeds or --warps is one line before anything runs; new --warps redo the decodes and scores, not the
    trainings."""
    import torch

    exp = tmp_path / "exp"
    source = speech_data.fsdd_source()
    speaker = sorted({p.stem.split("_")[1] for p in (source / "recordings").glob("*.wav")})[0]
    calls = tmp_path / "asr-calls.txt"  # every asr command the recipe runs, through ASR (template.sh honours it)
    wrapper = tmp_path / "asr"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {sys.executable} -m asr "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "ASR": str(wrapper)}
    base = ["bash", RECIPES / "fsdd" / "run.sh", "--source", source, "--exp", exp, "--conventional", "false",
            "--conf", RECIPES / "fsdd" / "conf" / "ci.yaml", "--loso-speakers", speaker,
            "--overrides", "train.epochs=1"]
    for bad, says in ((["--seeds", "1,2"], "--seeds: '1,2' is not a whole number"),
                      (["--seeds", "010"], "--seeds: '010' is not a whole number"),
                      (["--seeds", "2 1 2"], "--seeds: seed 2 is given twice"),
                      (["--seeds", " "], "--seeds: no seed"),
                      (["--warps", "0.9,,1"], "--warps: '' is not a warp"),
                      (["--warps", "1,"], "--warps: '' is not a warp"),
                      (["--warps", "1\n2"], "one line each"),
                      (["--warps", "3"], "--warps: '3' is not a warp between 0.5 and 2")):
        r = run(base + bad, env=env)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.splitlines()) == 1, (bad, r.stderr)
        assert not exp.exists() and not calls.exists()
    cmd = base + ["--seeds", "1  2", "--warps", "0.95,1"]
    r = run(cmd, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    fold = exp / f"loso-{speaker}"
    models = [fold / f"seed-{s}" / "model.pt" for s in (1, 2)]
    bundles = [read_bundle(m) for m in models]
    assert [b["config"]["train"]["seed"] for b in bundles] == [1, 2]
    assert not all(torch.equal(a, b) for a, b in zip(bundles[0]["model"].values(), bundles[1]["model"].values()))
    for m in models:  # each seed's model decoded and scored on its own too
        assert (m.parent / "decode" / "test" / "wer.json").exists()
    decodes = [line.split() for line in calls.read_text().splitlines() if line.startswith("decode ")]
    assert len(decodes) == 3 and all("--warps 0.95,1" in " ".join(d) for d in decodes), decodes
    ensemble = [d for d in decodes if d.count("--model") == 2]
    assert len(ensemble) == 1 and all(str(m) in ensemble[0] for m in models), decodes
    # the fold's hypotheses are those of the two models decoded together at both warps
    by_hand = tmp_path / "by-hand.jsonl"
    d = run([sys.executable, "-m", "asr", "decode", "--model", models[0], "--model", models[1], "--manifest",
             exp / "data" / fold.name / "test.jsonl", "--choices", exp / "data" / "words.txt",
             "--warps", "0.95,1", "--out", by_hand, "--quiet"])
    assert d.returncode == 0, d.stderr
    assert (fold / "decode-ensemble" / "test" / "hyp.jsonl").read_text() == by_hand.read_text()
    results = (fold / "RESULTS.md").read_text()
    row = next(line for line in results.splitlines() if line.startswith("| test+ensemble |"))
    assert "ensemble of seeds 1 2, warps 0.95,1" in row
    wer = float(row.split("|")[2])
    summary = (exp / "RESULTS-speaker-independent.md").read_text()
    assert f"| {fold.name}/test | {wer:.2f} |" in summary, summary
    # the same command again: nothing is redone; other warps: every decode, score and the summary, no training
    r2 = run(cmd, env=env)
    lines = stage_lines(r2.stdout)
    assert r2.returncode == 0 and lines and all("already done" in line for line in lines), r2.stdout
    calls.unlink()
    r3 = run(base + ["--seeds", "1 2", "--warps", "1"], env=env)
    assert r3.returncode == 0, r3.stderr[-2000:]
    redone = [line.split("] ")[1].split(":")[0] for line in stage_lines(r3.stdout) if "already done" not in line]
    assert redone == ["stage 6 decode", "stage 7 score", "stage 8 package"] * 2 + [
        "stage 6 ensemble", "stage 7 ensemble-score", "stage 14 summary"], stage_lines(r3.stdout)
    decodes = [line for line in calls.read_text().splitlines() if line.startswith("decode ")]
    assert len(decodes) == 3 and all(line.endswith("--warps 1") for line in decodes), decodes
    assert "ensemble of seeds 1 2, warps 1 |" in (fold / "RESULTS.md").read_text()


def test_fsdd_recipe_adds_other_voices_to_every_training_set(speech_data, tmp_path):
    """--speech-commands and --synth-takes: stage 2 extra writes the extra digit recordings (Speech Commands'
    digit words only, every synthetic voice) and a train-extra.jsonl beside every train.jsonl, which holds
    that training set and the extras, and never the fold's test speaker."""
    from test_speech_commands import VOICE_OF, write_clip, write_test_layout

    from asr.corpus import speech_commands as sc
    from asr.manifest import read_manifest

    words_sc = write_test_layout(tmp_path / "sc")  # commands, BED and silence from three speakers (one per split)
    speakers = sorted(VOICE_OF)
    for speaker in speakers:
        write_clip(words_sc / sc.UNKNOWN / f"three_{speaker}_nohash_0.flac", "three", speaker, 2)
    exp = tmp_path / "exp"
    cmd = ["bash", RECIPES / "fsdd" / "run.sh", "--source", speech_data.fsdd_source(), "--exp", exp,
           "--speech-commands", words_sc, "--synth-takes", "1", "--stop-stage", "2"]
    r = run(cmd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert [line.split("] ")[1].split(":")[0] for line in stage_lines(r.stdout)] == [
        "stage 1 download", "stage 2 manifests", "stage 2 extra"]
    extra = read_manifest(exp / "data" / "extra.jsonl")
    digits = set((exp / "data" / "words.txt").read_text().split())
    assert {u.text for u in extra} == digits  # every digit (synthetic voices), nothing else (no BED, no YES)
    real = [u for u in extra if not u.speaker.startswith("synth")]
    assert sorted(u.speaker for u in real) == speakers and {u.text for u in real} == {"THREE"}
    synth_voices = {u.speaker for u in extra} - set(speakers)
    assert len(synth_voices) >= 20 and len(extra) == len(real) + 10 * len(synth_voices)
    folds = sorted((exp / "data").glob("loso-*"))
    assert folds
    for folder in [exp / "data" / "conventional", *folds]:
        train = read_manifest(folder / "train.jsonl")
        both = read_manifest(folder / "train-extra.jsonl")
        assert [u.id for u in both] == [u.id for u in train] + [u.id for u in extra]
        if folder.name.startswith("loso-"):
            assert folder.name.removeprefix("loso-") not in {u.speaker for u in both}
    r2 = run(cmd)
    assert r2.returncode == 0 and all("already done" in line for line in stage_lines(r2.stdout)), r2.stdout


def assemble_librispeech(root: Path, sample: Path, n_train: int = 30) -> Path:
    """A LibriSpeech-layout folder: train-clean-100 (two chapters) and train-clean-360 (one) from the committed
    synthetic corpus, dev-clean and test-clean from the LibriSpeech sample (real, or generated without
    ../shared)."""
    ls = root / "LibriSpeech"
    synth_train = REPO / "data" / "synth" / "train"
    chapters = sorted(synth_train.glob("*/*"))[:3]
    for i, ch in enumerate(chapters):
        dest = ls / ("train-clean-100" if i < 2 else "train-clean-360") / ch.parent.name / ch.name
        dest.mkdir(parents=True)
        trans = sorted(ch.glob("*.trans.txt"))[0]
        lines = trans.read_text().splitlines()[: n_train // len(chapters)]
        (dest / trans.name).write_text("\n".join(lines) + "\n")
        for line in lines:
            shutil.copy(ch / f"{line.split()[0]}.ogg", dest)
    for subset in ("dev-clean", "test-clean"):
        shutil.copytree(sample / "LibriSpeech" / subset, ls / subset)
    return root


def test_librispeech_recipe_end_to_end(speech_data, tmp_path):
    """Two training subsets (--size 460h: merged at stage 2), a feature cache stage, two data-parallel training
    processes (gloo on this CPU), and stages 9-13: decoding with an n-gram LM given as a local openslr-11-style
    folder (the ARPA file already decompressed)."""
    from asr.lm import build_arpa, read_sentences

    src = assemble_librispeech(tmp_path / "src", speech_data.librispeech_sample())
    exp = tmp_path / "exp"
    lm_src = tmp_path / "openslr11"
    lm_src.mkdir()
    text = tmp_path / "lm-text.txt"
    text.write_text("\n".join(line.split(" ", 1)[1] for f in sorted(src.rglob("*.trans.txt"))
                              for line in f.read_text().splitlines()) + "\n")
    build_arpa(read_sentences(text), lm_src / "3-gram.pruned.1e-7.arpa", order=3)
    (lm_src / "librispeech-vocab.txt").write_text("\n".join(sorted(set(text.read_text().split()))) + "\n")
    r = run(["bash", RECIPES / "librispeech" / "run.sh", "--source", src, "--exp", exp, "--datadir", tmp_path / "data",
             "--conf", RECIPES / "librispeech" / "conf" / "tiny.yaml", "--test-sets", "dev-clean test-clean",
             "--size", "460h", "--ngpu", "2", "--feature-cache", "true", "--lm-source", lm_src], cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    names = [line.split("] ")[1].split(":")[0] for line in stage_lines(r.stdout)]
    assert names == ["stage 1 download", "stage 2 manifests", "stage 2 merge-train-clean-100+train-clean-360",
                     "stage 3 stats", "stage 4 tokenizer", "stage 4 features", "stage 5 train", "stage 6 decode",
                     "stage 7 score", "stage 8 package", "stage 9 lm-download", "stage 10 lexicon", "stage 11 tune",
                     "stage 12 lm-decode", "stage 13 lm-score"]
    log = (exp / "train.log").read_text()
    assert "x 2 rank(s)" in log and f"features from {exp / 'features'}" in log
    assert "each seen exactly once across 2 ranks" in log
    rows = [line for line in (exp / "RESULTS.md").read_text().splitlines() if line.startswith("| ")][2:]
    assert sorted(r.split("|")[1].strip() for r in rows) == ["dev-clean", "dev-clean+lm", "test-clean", "test-clean+lm"]
    assert (exp / "final.pt").is_file()
    assert "decoding" in read_bundle(exp / "model-lm.pt")  # tuned LM weight and word bonus


def stage_names(out: str) -> list[str]:
    return [line.split("] ")[1].split(":")[0] for line in stage_lines(out)]


def test_librispeech_recipe_on_the_subsets_a_user_has_and_rescoring_refreshes_the_package(speech_data, tmp_path):
    """With only dev-clean and test-clean: the default sets stop at stage 1 naming the missing subsets and those
    found; training on dev-clean and testing on test-clean runs stages 1-8. Rescoring (stage 7 again, on changed
    hypotheses) removes the package's marker, so stage 8 writes a final.pt with the new rows."""
    exp = tmp_path / "exp"
    cmd = ["bash", RECIPES / "librispeech" / "run.sh", "--source", speech_data.librispeech_sample(),
           "--datadir", tmp_path / "data", "--exp", exp, "--conf", RECIPES / "librispeech" / "conf" / "tiny.yaml"]
    r = run(cmd)
    assert r.returncode == 1 and "stage 1 download: FAILED" in r.stderr
    assert "subsets train-clean-100, dev-other, test-other not found (found: dev-clean, test-clean)" in r.stderr
    cmd += ["--train-sets", "dev-clean", "--test-sets", "test-clean", "--dev-set", "", "--lm", ""]
    r = run(cmd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert stage_names(r.stdout) == ["stage 1 download", "stage 2 manifests", "stage 3 stats", "stage 4 tokenizer",
                                     "stage 5 train", "stage 6 decode", "stage 7 score", "stage 8 package"]
    assert read_bundle(exp / "model.pt")["config"]["data"]["train"].endswith("/dev-clean.jsonl")
    [row] = read_bundle(exp / "final.pt")["results"]
    assert row["set"] == "test-clean" and row["wer"] > 0
    # rescore: perfect hypotheses, the score marker removed; the package follows
    hyp = exp / "decode" / "test-clean" / "hyp.jsonl"
    hyp.write_text((tmp_path / "data" / "manifests" / "test-clean.jsonl").read_text())
    (exp / ".done" / "stage7.score").unlink()
    r = run(cmd + ["--stage", "6"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert stage_names(r.stdout) == ["stage 6 decode", "stage 7 score", "stage 8 package"]
    assert "stage 6 decode: already done" in r.stdout and "stage 8 package: done" in r.stdout
    [row] = read_bundle(exp / "final.pt")["results"]
    assert row["set"] == "test-clean" and row["wer"] == 0


def synth_subset(root: Path, per_set: int = 4) -> Path:
    """A few utterances of each set of the committed synthetic corpus (data/synth), same layout."""
    for subset in ("train", "dev", "test-seen", "test-unseen"):
        for ch in sorted((REPO / "data" / "synth" / subset).glob("*/*"))[:2]:
            dest = root / subset / ch.parent.name / ch.name
            dest.mkdir(parents=True)
            trans = sorted(ch.glob("*.trans.txt"))[0]
            lines = trans.read_text().splitlines()[: per_set // 2]
            (dest / trans.name).write_text("\n".join(lines) + "\n")
            for line in lines:
                shutil.copy(ch / f"{line.split()[0]}.ogg", dest)
    return root


def test_demo_recipe_options_and_stages(tmp_path):
    """The demo takes the shared options (--help, unknown options and bare key=value rejected, --overrides),
    honours --stage/--stop-stage, and leaves markers so that a rerun skips finished stages."""
    demo = RECIPES / "demo" / "run.sh"
    r = run(["bash", demo, "--help"])
    assert r.returncode == 0 and all(o in r.stdout for o in ("--stop-stage", "--overrides", "[exp/demo]",
                                                             "[data/synth]"))
    r = run(["bash", demo, "--no-such-option", "1"])
    assert r.returncode == 2 and "unknown option" in r.stderr
    r = run(["bash", demo, "train.epochs=1"])
    assert r.returncode == 2 and "unexpected argument" in r.stderr
    exp = tmp_path / "exp"
    cmd = ["bash", demo, "--data", synth_subset(tmp_path / "synth"), "--exp", exp,
           "--overrides", "train.epochs=1 model.hidden_size=32 model.num_layers=1"]
    r = run(cmd + ["--stop-stage", "2"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert stage_names(r.stdout) == ["stage 2 manifests"] and "stage 2 manifests: done" in r.stdout
    assert (exp / "data" / "test-unseen.jsonl").is_file() and not (exp / "model.pt").exists()
    r = run(cmd + ["--stage", "3", "--stop-stage", "5"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert stage_names(r.stdout) == ["stage 5 train"]  # statistics and tokenizer come from `asr train` itself
    assert read_bundle(exp / "model.pt")["config"]["model"]["hidden_size"] == 32
    assert not (exp / "decode").exists()
    r = run(cmd + ["--stop-stage", "5"])
    assert r.returncode == 0 and stage_names(r.stdout) == ["stage 2 manifests", "stage 5 train"]
    assert all("already done" in line for line in stage_lines(r.stdout))


def test_an4_recipe_end_to_end_from_sphere(tmp_path):
    write_an4(tmp_path / "src", [f"sp{c}" for c in "abcdefgh"], ["tsta", "tstb"], per_speaker=3)
    exp = tmp_path / "exp"
    r = run(["bash", RECIPES / "an4" / "run.sh", "--source", tmp_path / "src", "--exp", exp,
             "--conf", RECIPES / "librispeech" / "conf" / "tiny.yaml"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = [line for line in (exp / "RESULTS.md").read_text().splitlines() if line.startswith("| ")][2:]
    assert sorted(r.split("|")[1].strip() for r in rows) == ["dev", "test"]
    # a stage whose command fails (here: one of two parallel decodes) stops the recipe and leaves no marker
    (exp / ".done" / "stage6.decode").unlink()
    (exp / "data" / "dev.jsonl").write_text("not json\n")
    r = run(["bash", RECIPES / "an4" / "run.sh", "--source", tmp_path / "src", "--exp", exp, "--stage", "6",
             "--conf", RECIPES / "librispeech" / "conf" / "tiny.yaml"])
    assert r.returncode == 1 and "stage 6 decode: FAILED" in r.stderr and "dev.jsonl:1" in r.stderr
    assert not (exp / ".done" / "stage6.decode").exists()


def test_a_failing_download_stops_the_recipe(tmp_path):
    r = run(["bash", RECIPES / "fsdd" / "run.sh", "--source", tmp_path / "missing", "--exp", tmp_path / "exp"])
    assert r.returncode == 1 and "stage 1 download: FAILED" in r.stderr and "local source not found" in r.stderr
    assert not (tmp_path / "exp" / ".done").exists()
