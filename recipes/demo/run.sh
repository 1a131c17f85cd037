#!/usr/bin/env bash
# Offline demo (`make demo`): train on the small synthetic corpus in data/synth for a 9-minute budget, decode
# and score both test sets, again with beam search and a 3-gram LM of the training transcripts, and transcribe
# an example. Stage numbers as in every recipe (recipes/lib/template.sh): 2 manifests, 5 train, 6 decode,
# 7 score, 8 package, 9 lm-build, 10 lexicon, 11 tune, 12 lm-decode, 13 lm-score, 14 example. The corpus is
# committed, so there is no download (1); `asr train` computes the statistics and tokenizer itself (no 3-4).
# Example: recipes/demo/run.sh --overrides "train.max_minutes=2" --exp exp/demo-short
set -euo pipefail

# --- options ---
stage=1                 # first stage to run (2 manifests ... 14 example)
stop_stage=14           # last stage to run
data=data/synth         # corpus in LibriSpeech layout: train, dev, test-seen, test-unseen
exp=exp/demo            # experiment folder
conf=conf/demo.yaml     # training config
overrides=""            # extra training config overrides, e.g. "train.max_minutes=2 model.hidden_size=128"
nj=2                    # test sets decoded in parallel
# --- end options ---
path_opts="data exp conf"
. "$(dirname "$0")/../lib/parse_options.sh"
cd "$(dirname "$0")/../.."  # defaults are relative to the repository root
. recipes/lib/template.sh

train_prep=false  # statistics and tokenizer computed by `asr train` (features cached before its time budget)
test_sets="test-seen test-unseen"

# _example: the first recording of test-unseen, its reference transcript and the model's hypothesis
_example() {
  local audio ref hyp
  audio=$(find "$data/test-unseen" \( -name '*.ogg' -o -name '*.flac' -o -name '*.wav' \) | sort | sed -n 1p) \
    || return 1
  [ -n "$audio" ] || { echo "$data/test-unseen: no recordings" >&2; return 1; }
  ref=$(grep -h "^$(basename "${audio%.*}") " "$(dirname "$audio")"/*.trans.txt | cut -d' ' -f2-) || return 1
  hyp=$("$ASR" transcribe --model "$exp/model.pt" "$audio") || return 1
  echo "example:    $audio"
  echo "reference:  $ref"
  echo "hypothesis: $hyp"
}

run_stage 2 manifests "$exp" "$ASR" prepare librispeech "$data" "$exp/data"
model_stages "$exp/data" "$exp" train dev "$test_sets"
run_stage 9 lm-build "$exp" "$ASR" lm "$exp/data/train.jsonl" "$exp/lm"
lm_stages "$exp/data" "$exp" "$exp/lm/lm.arpa" dev "$test_sets"
run_stage 14 example "$exp" _example
[ ! -f "$exp/RESULTS.md" ] || cat "$exp/RESULTS.md"
log "results: $exp/RESULTS.md; model: $exp/final.pt (with the LM: $exp/model-lm.pt)"
