#!/usr/bin/env bash
# The staged template every corpus recipe calls. Each stage is one `asr` command; a finished stage leaves
# a marker (EXP/.done/stageN.NAME) so that a rerun skips it, and each stage prints one log line with its
# time. Stage numbers are shared by all recipes:
#   1 download   2 manifests   3 stats   4 tokenizer   5 train   6 decode   7 score   8 package
#
# The calling recipe sets: corpus, stage, stop_stage, conf, source, nj, overrides, decode_opts, ngpu,
# feature_cache, and calls
#   corpus_stages DOWNLOAD_DIR MANIFEST_DIR MARKER_DIR   (stages 1-2)
#   model_stages  MANIFEST_DIR EXP TRAIN DEV "TEST ..."  (stages 3-8)

set -euo pipefail

if [ -n "${ASR:-}" ]; then :
elif [ -x "$(dirname "${BASH_SOURCE[0]}")/../../.venv/bin/asr" ]; then ASR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv/bin/asr"
else ASR=asr
fi

# torchrun (data-parallel training) from the same environment as asr
TORCHRUN="$(dirname "$(command -v "$ASR")")/torchrun"
[ -x "$TORCHRUN" ] || TORCHRUN=torchrun

log() { echo "[$(date '+%Y-%m-%d %H:%M:%S')] $*"; }

# run_stage N NAME MARKER_DIR CMD...: run CMD unless N is outside --stage..--stop-stage or already done
run_stage() {
  local n=$1 name=$2 markers=$3
  shift 3
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  local marker="$markers/.done/stage$n.$name"
  if [ -f "$marker" ]; then
    log "stage $n $name: already done, skipped (remove $marker to redo)"
    return 0
  fi
  local t0=$SECONDS
  if ! "$@"; then
    log "stage $n $name: FAILED after $((SECONDS - t0)) s ($markers)" >&2
    exit 1
  fi
  mkdir -p "$markers/.done"
  date '+%Y-%m-%d %H:%M:%S' > "$marker"
  log "stage $n $name: done in $((SECONDS - t0)) s ($markers)"
}

corpus_stages() {
  local download_dir=$1 manifests=$2 markers=$3
  local src_opt=()
  [ -n "$source" ] && src_opt=(--source "$source")
  run_stage 1 download "$markers" "$ASR" download "$corpus" "$download_dir" "${src_opt[@]}" ${download_opts:-} --quiet
  run_stage 2 manifests "$markers" "$ASR" prepare "$corpus" "$download_dir" "$manifests" ${prepare_opts:-} --quiet
}

# (functions run as a stage's command execute inside `if`, where `set -e` does not apply: they check
# every status themselves)
_decode_sets() {
  local manifests=$1 exp=$2
  shift 2
  local set running=0 failed=0
  for set in "$@"; do
    "$ASR" decode --model "$exp/model.pt" --manifest "$manifests/$set.jsonl" --out "$exp/decode/$set/hyp.jsonl" \
      ${decode_opts:-} --quiet > /dev/null &
    running=$((running + 1))
    if [ "$running" -ge "$nj" ]; then wait -n || failed=1; running=$((running - 1)); fi
  done
  while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
  return "$failed"
}

_score_sets() {
  local manifests=$1 exp=$2
  shift 2
  local set
  for set in "$@"; do
    "$ASR" score --manifest "$manifests/$set.jsonl" --hyp "$exp/decode/$set/hyp.jsonl" --out-dir "$exp/decode/$set" \
      --name "$set" --results "$exp/RESULTS.md" --model-label "$exp/model.pt" --config-label "$conf" || return 1
  done
}

# _train ARGS...: `asr train`, or with --ngpu N > 1 the same command as N data-parallel processes
# under torchrun (one per GPU; NCCL on GPUs, gloo on a CPU-only machine)
_train() {
  if [ "${ngpu:-1}" -gt 1 ]; then
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$TORCHRUN" --standalone --nproc_per_node "$ngpu" -m asr train "$@"
  else
    "$ASR" train "$@"
  fi
}

# lm_decode MANIFESTS EXP LMDIR DEV TEST...: a word LM (openslr 11, or $lm_source) and a lexicon spelled by
# the model, LM weight and word bonus tuned on DEV (stored in EXP/model-lm.pt), then every test set decoded
# with beam search + LM and scored as "<set>+lm" rows of EXP/RESULTS.md
lm_decode() {
  local manifests=$1 exp=$2 lmdir=$3 dev=$4
  shift 4
  local src_opt=() set
  [ -n "${lm_source:-}" ] && src_opt=(--source "$lm_source")
  "$ASR" download librispeech-lm "$lmdir" --lm "$lm" "${src_opt[@]}" --quiet > /dev/null || return 1
  "$ASR" lexicon --model "$exp/model.pt" "$lmdir/$lm.arpa" "$exp/lm/lexicon.txt" > /dev/null || return 1
  "$ASR" tune --model "$exp/model.pt" --manifest "$manifests/$dev.jsonl" --lm "$lmdir/$lm.arpa" \
    --lexicon "$exp/lm/lexicon.txt" --lm-weights 0.5 1 1.5 2 --word-scores -1 0 1 --out "$exp/model-lm.pt" \
    --quiet | tail -2 || return 1
  for set in "$@"; do
    "$ASR" decode --model "$exp/model-lm.pt" --manifest "$manifests/$set.jsonl" --out "$exp/decode-lm/$set/hyp.jsonl" \
      --lm "$lmdir/$lm.arpa" --lexicon "$exp/lm/lexicon.txt" --quiet > /dev/null || return 1
    "$ASR" score --manifest "$manifests/$set.jsonl" --hyp "$exp/decode-lm/$set/hyp.jsonl" --out-dir "$exp/decode-lm/$set" \
      --name "$set+lm" --results "$exp/RESULTS.md" --model-label "$exp/model-lm.pt ($lm)" --config-label "$conf" \
      || return 1
  done
}

model_stages() {
  local manifests=$1 exp=$2 train_set=$3 dev_set=$4 test_sets=$5
  local dev_opt=()
  [ -n "$dev_set" ] && dev_opt=(data.dev="$manifests/$dev_set.jsonl")
  mkdir -p "$exp"
  # shellcheck disable=SC2086
  run_stage 3 stats "$exp" "$ASR" stats --config "$conf" "$manifests/$train_set.jsonl" "$exp/cmvn.json" $overrides --quiet
  # shellcheck disable=SC2086
  run_stage 4 tokenizer "$exp" "$ASR" tokenizer --config "$conf" "$manifests/$train_set.jsonl" "$exp/tokenizer.json" $overrides
  local cache_opt=()
  if [ "${feature_cache:-false}" = true ]; then
    # shellcheck disable=SC2086
    run_stage 4 features "$exp" "$ASR" features --config "$conf" "$manifests/$train_set.jsonl" "$exp/features" \
      $overrides --quiet
    cache_opt=(data.feature_cache="$exp/features")
  fi
  # shellcheck disable=SC2086
  run_stage 5 train "$exp" _train --config "$conf" data.train="$manifests/$train_set.jsonl" "${dev_opt[@]}" \
    "${cache_opt[@]}" data.cmvn="$exp/cmvn.json" tokenizer.file="$exp/tokenizer.json" train.exp_dir="$exp" $overrides
  # shellcheck disable=SC2086
  run_stage 6 decode "$exp" _decode_sets "$manifests" "$exp" $test_sets
  # shellcheck disable=SC2086
  run_stage 7 score "$exp" _score_sets "$manifests" "$exp" $test_sets
  run_stage 8 package "$exp" "$ASR" package "$exp" "$exp/final.pt"
}
