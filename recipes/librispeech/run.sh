#!/usr/bin/env bash
# LibriSpeech: download (openslr 12) → manifests → normalisation statistics → tokenizer → train → decode
# each dev/test set → score (one RESULTS.md row per set) → package; then 9-13 the same with beam search and an
# openslr 11 n-gram LM. Stage numbers: recipes/lib/template.sh.
# Example on a GPU box: ./run.sh --conf conf/bgru_100h.yaml
# Offline: ./run.sh --source /data/LibriSpeech-archives   (a folder with the .tar.gz files, or extracted)
# Only some subsets: ./run.sh --source DIR --train-sets dev-clean --test-sets test-clean --dev-set "" --lm ""
set -euo pipefail

# --- options ---
stage=1                               # first stage to run (1 download ... 8 package, 9-13 LM; recipes/lib/template.sh)
stop_stage=13                         # last stage to run (9-13: decoding with an openslr 11 n-gram LM)
conf=conf/bgru_100h.yaml              # training config
source=""                             # local archives or extracted LibriSpeech; empty = openslr.org
size=100h                             # training data, when --train-sets is empty: 100h, 460h or 960h
train_sets=""                         # training subsets, e.g. "train-clean-100 train-clean-360" (empty: from --size)
exp=""                                # experiment folder (default: exp/<config name>)
datadir=data                          # downloads and manifests (shared by all experiments)
nj=2                                  # test sets decoded in parallel
overrides=""                          # extra config overrides, e.g. "train.epochs=1"
test_sets="dev-clean dev-other test-clean test-other"  # each decoded and scored separately
dev_set=dev-clean                     # per-epoch model selection and LM tuning; "" = none (then also --lm "")
ngpu=1                                # data-parallel training processes (GPUs; gloo processes on a CPU-only machine)
feature_cache=false                   # true: precompute training features into memory-mapped shards (stage 4)
lm=3-gram.pruned.1e-7                 # openslr 11 LM of stages 9-13 (or 3-gram.pruned.3e-7, 3-gram, 4-gram); "" = none
lm_source=""                          # folder with <lm>.arpa.gz (or <lm>.arpa), librispeech-vocab.txt; "" = openslr.org
# --- end options ---
path_opts="source conf exp datadir lm_source"
. "$(dirname "$0")/../lib/parse_options.sh"
cd "$(dirname "$0")"  # defaults are relative to the recipe folder
. ../lib/template.sh

corpus=librispeech
tune_opts="--lm-weights 0.5 1 1.5 2 --word-scores -1 0 1"  # stage 11's grid (each point decodes the dev set)
[ -n "$exp" ] || exp=exp/$(basename "${conf%.yaml}")
if [ -z "$train_sets" ]; then
  case "$size" in
    100h) train_sets="train-clean-100" ;;
    460h) train_sets="train-clean-100 train-clean-360" ;;
    960h) train_sets="train-clean-100 train-clean-360 train-other-500" ;;
    *) echo "$0: --size must be 100h, 460h or 960h (or name the subsets with --train-sets)" >&2; exit 2 ;;
  esac
fi
if [ -z "${test_sets// /}" ]; then echo "$0: --test-sets is empty" >&2; exit 2; fi
if [ -n "$lm" ] && [ -z "$dev_set" ] && [ "$stop_stage" -ge 9 ]; then
  echo "$0: the LM stages (9-13) tune on --dev-set; give one, or skip them with --lm \"\"" >&2
  exit 2
fi
# every subset once, in order: training, test, dev; checked against the source at stage 1
subsets=()
for s in $train_sets $test_sets $dev_set; do
  [[ " ${subsets[*]} " == *" $s "* ]] || subsets+=("$s")
done
download_opts="--subsets ${subsets[*]}"
prepare_opts="--subsets ${subsets[*]}"
# one training set is used as it is; several are merged into one manifest named after them all
read -ra train_list <<< "$train_sets"
if [ "${#train_list[@]}" -eq 0 ]; then echo "$0: --train-sets is empty" >&2; exit 2; fi
train_name=$(IFS=+; echo "${train_list[*]}")

corpus_stages "$datadir/download" "$datadir/manifests" "$datadir"
if [ "${#train_list[@]}" -gt 1 ]; then
  train_files=("${train_list[@]/#/$datadir/manifests/}")
  run_stage 2 "merge-$train_name" "$datadir" "$ASR" merge "$datadir/manifests/$train_name.jsonl" \
    "${train_files[@]/%/.jsonl}"
fi
model_stages "$datadir/manifests" "$exp" "$train_name" "$dev_set" "$test_sets"
if [ -n "$lm" ]; then
  lm_src_opt=()
  [ -n "$lm_source" ] && lm_src_opt=(--source "$lm_source")
  run_stage 9 lm-download "$exp" "$ASR" download librispeech-lm "$datadir/lm" --lm "$lm" "${lm_src_opt[@]}"
  lm_stages "$datadir/manifests" "$exp" "$datadir/lm/$lm.arpa" "$dev_set" "$test_sets"
fi
log "results: $exp/RESULTS.md"
