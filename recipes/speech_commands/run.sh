#!/usr/bin/env bash
# Speech Commands v0.02: one-second clips of single words from thousands of real speakers, scored as the usual
# twelve-way task (ten commands, _unknown_, _silence_). The model spells words (characters, CTC); greedy
# decoding, then a transcript's class: exactly a command word is that command, empty is _silence_, any other
# text is _unknown_. RESULTS.md has WER/CER per test set; decode/<set>/confusion.md the accuracy and confusions.
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
# --- end options ---
path_opts="source conf exp"
. "$(dirname "$0")/../lib/parse_options.sh"
cd "$(dirname "$0")"  # defaults are relative to the recipe folder
. ../lib/template.sh

corpus=speech_commands
decode_opts=""                                       # greedy: the class follows from the decoded text
score_opts="--classes $exp/data/labels.txt"          # twelve-way accuracy and confusion table beside WER

corpus_stages "$exp/download" "$exp/data" "$exp"
test_sets=test
[ -f "$exp/data/test-canonical.jsonl" ] && test_sets="test test-canonical"
model_stages "$exp/data" "$exp" train dev "$test_sets"
log "results: $exp/RESULTS.md; twelve-way accuracy: $exp/decode/<set>/confusion.md"
