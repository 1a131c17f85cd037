#!/usr/bin/env bash
# LibriSpeech: download (openslr 12) → manifests → normalisation statistics → tokenizer → train → decode
# each dev/test set → score (one RESULTS.md row per set) → package.
# Example on a GPU box: ./run.sh --conf conf/bgru_100h.yaml
# Offline: ./run.sh --source /data/LibriSpeech-archives   (a folder with the .tar.gz files, or extracted)
set -euo pipefail

# --- options ---
stage=1                               # first stage to run (1 download ... 8 package)
stop_stage=9                          # last stage to run (9: decoding with an openslr 11 n-gram LM)
conf=conf/bgru_100h.yaml              # training config
source=""                             # local archives or extracted LibriSpeech; empty = openslr.org
size=100h                             # training data: 100h, 460h or 960h
exp=""                                # experiment folder (default: exp/<config name>)
datadir=data                          # downloads and manifests (shared by all experiments)
nj=2                                  # test sets decoded in parallel
overrides=""                          # extra config overrides, e.g. "train.epochs=1"
test_sets="dev-clean dev-other test-clean test-other"  # each decoded and scored separately
dev_set=dev-clean                     # per-epoch model selection
ngpu=1                                # data-parallel training processes (GPUs; gloo processes on a CPU-only machine)
feature_cache=false                   # true: precompute training features into memory-mapped shards (stage 4)
lm=3-gram.pruned.1e-7                 # openslr 11 LM for stage 9 (3-gram.pruned.3e-7, 3-gram, 4-gram); "" skips it
lm_source=""                          # local folder holding <lm>.arpa.gz and librispeech-vocab.txt; empty = openslr.org
# --- end options ---
path_opts="source conf exp datadir lm_source"
. "$(dirname "$0")/../lib/parse_options.sh"
cd "$(dirname "$0")"  # defaults are relative to the recipe folder
. ../lib/template.sh

corpus=librispeech
[ -n "$exp" ] || exp=exp/$(basename "${conf%.yaml}")
case "$size" in
  100h) train_parts="train-clean-100" ;;
  460h) train_parts="train-clean-100 train-clean-360" ;;
  960h) train_parts="train-clean-100 train-clean-360 train-other-500" ;;
  *) echo "$0: --size must be 100h, 460h or 960h" >&2; exit 2 ;;
esac
# shellcheck disable=SC2206
subsets=($train_parts $test_sets)
[[ " ${subsets[*]} " == *" $dev_set "* ]] || subsets+=("$dev_set")
download_opts="--subsets ${subsets[*]}"
prepare_opts="--subsets ${subsets[*]}"

corpus_stages "$datadir/download" "$datadir/manifests" "$datadir"
# shellcheck disable=SC2046
run_stage 2 "merge-$size" "$datadir" "$ASR" merge "$datadir/manifests/train-$size.jsonl" \
  $(printf "$datadir/manifests/%s.jsonl " $train_parts)
model_stages "$datadir/manifests" "$exp" "train-$size" "$dev_set" "$test_sets"
if [ -n "$lm" ]; then
  # shellcheck disable=SC2086
  run_stage 9 lm "$exp" lm_decode "$datadir/manifests" "$exp" "$datadir/lm" "$dev_set" $test_sets
fi
log "results: $exp/RESULTS.md"
