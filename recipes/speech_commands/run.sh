#!/usr/bin/env bash
# Speech Commands v0.02: one-second clips of single words from thousands of real speakers, scored as the usual
# twelve-way task (ten commands, _unknown_, _silence_). The model spells words (characters, CTC); decoding
# picks the most likely of the training words or silence (closed set; --closed-set false: greedy spelling),
# then a transcript's class: exactly a command word is that command, empty is _silence_, any other text is
# _unknown_. RESULTS.md has WER/CER per test set; decode/<set>/confusion.md the accuracy and confusions.
# Example: ./run.sh --source ../../../shared/data/speech_commands     (the canonical test set alone, split
# by speaker 80/10/10); with no --source both upstream archives are downloaded (2.4 GB + 112 MB) and the
# official validation/testing lists are used, plus the canonical test set as `test-canonical`.
set -euo pipefail

# --- options ---
stage=1                       # first stage to run (1 download, 2 manifests, 3-8 model)
stop_stage=8                  # last stage to run
conf=conf/speech_commands.yaml  # training config
source=""                     # local copy: an archive, a folder holding the archives, or extracted clips
exp=exp/speech_commands       # experiment folder
nj=2                          # test sets decoded in parallel
overrides=""                  # extra config overrides, e.g. "train.epochs=1 model.hidden_size=32"
ngpu=1                        # data-parallel training processes (GPUs; gloo processes on a CPU-only machine)
feature_cache=false           # true: precompute training features into memory-mapped shards (stage 4)
closed_set=true               # decode as the most likely of the training words or silence; false: greedy
synth_takes=0                 # takes per synthetic voice (espeak-ng/flite) and training word joining training
# --- end options ---
path_opts="source conf exp"
. "$(dirname "$0")/../lib/parse_options.sh"
cd "$(dirname "$0")"  # defaults are relative to the recipe folder
. ../lib/template.sh

corpus=speech_commands
decode_opts=""                                       # greedy: the class follows from the decoded text
[ "$closed_set" = true ] && decode_opts="--choices $exp/data/words.txt --empty-choice"  # train words or silence
score_opts="--classes $exp/data/labels.txt"          # twelve-way accuracy and confusion table beside WER

corpus_stages "$exp/download" "$exp/data" "$exp"

# synth_voices: every synthetic voice speaks every training word; EXP/data/train-extra.jsonl = train + those
synth_voices() {
  rm -rf "$exp/extra/synth"
  "$ASR" synth "$exp/extra/synth" --words "$exp/data/words.txt" --takes "$synth_takes" --quiet || return 1
  "$ASR" merge "$exp/data/train-extra.jsonl" "$exp/data/train.jsonl" "$exp/extra/synth/words.jsonl" || return 1
}
train_set=train
if [ "$synth_takes" -gt 0 ]; then
  run_stage 2 extra "$exp" synth_voices
  train_set=train-extra
fi
test_sets=test
[ -f "$exp/data/test-canonical.jsonl" ] && test_sets="test test-canonical"
model_stages "$exp/data" "$exp" "$train_set" dev "$test_sets"
log "results: $exp/RESULTS.md; twelve-way accuracy: $exp/decode/<set>/confusion.md"
