#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): real human speech, ten words, trains on a laptop CPU.
# Two evaluations: the conventional split (takes 0-4 of every speaker are the test set) and
# speaker-independent leave-one-speaker-out (one model per held-out speaker; mean and worst speaker).
# Example: ./run.sh --source ../../../shared/data/fsdd
set -euo pipefail

# --- options ---
stage=1                  # first stage to run (1 download, 2 manifests, 3-8 per model, 14 speaker summary)
stop_stage=14            # last stage to run
conf=conf/fsdd.yaml      # training config
source=""                # local copy of the dataset (archive, or folder holding recordings/); empty = GitHub
exp=exp/fsdd             # experiment root
nj=2                     # test sets decoded in parallel
overrides=""             # extra config overrides for every model, e.g. "train.max_minutes=1"
loso=true                # also run the leave-one-speaker-out evaluation
ngpu=1                   # data-parallel training processes (GPUs; gloo processes on a CPU-only machine)
feature_cache=false      # true: precompute training features into memory-mapped shards (stage 4)
# --- end options ---
path_opts="source conf exp"
. "$(dirname "$0")/../lib/parse_options.sh"
cd "$(dirname "$0")"  # defaults are relative to the recipe folder
. ../lib/template.sh

corpus=fsdd
decode_opts="--choices $exp/data/words.txt"  # decoding restricted to the ten words

corpus_stages "$exp/download" "$exp/data" "$exp"
model_stages "$exp/data/conventional" "$exp/conventional" train dev test
if [ "$loso" = true ]; then
  for fold in "$exp"/data/loso-*/; do
    [ -d "$fold" ] || continue  # manifests not prepared yet (--stop-stage 1)
    fold=$(basename "$fold")
    model_stages "$exp/data/$fold" "$exp/$fold" train dev test
  done
  if compgen -G "$exp/loso-*/decode/test/wer.json" > /dev/null; then
    run_stage 14 summary "$exp" "$ASR" summarize "$exp"/loso-*/decode/test/wer.json \
      --out "$exp/RESULTS-speaker-independent.md" --title "FSDD leave-one-speaker-out ($conf)"
  fi
fi
log "conventional split: $exp/conventional/RESULTS.md"
