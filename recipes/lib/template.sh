#!/usr/bin/env bash
# The staged template every recipe calls. Each stage is one `asr` command; a finished stage leaves a marker
# (EXP/.done/stageN.NAME) so that a rerun skips it, and each stage prints one log line with its time (stdout;
# progress bars go to stderr). Stage numbers mean the same in every recipe; a recipe skips those it lacks:
#    1 download     the corpus (openslr, GitHub, CMU) or a local --source; the demo has none (data/ is committed)
#    2 manifests    JSON Lines per set (LibriSpeech also 2 merge: several training subsets into one manifest)
#    3 stats        CMVN statistics of the training set
#    4 tokenizer    (4 features: with --feature-cache true, the training features precomputed)
#    5 train        6 decode (greedy, each test set)   7 score (one RESULTS.md row per set)
#    8 package      EXP/final.pt: the model with the stage-7 rows; running stage 7 again removes this marker
#    9 lm           a word n-gram LM: LibriSpeech 9 lm-download (openslr 11), demo 9 lm-build (asr lm)
#   10 lexicon      the LM's words spelled with the model's tokenizer
#   11 tune         LM weight and word bonus tuned on the dev set, stored in EXP/model-lm.pt
#   12 lm-decode    beam search + LM, each test set       13 lm-score   "<set>+lm" rows of RESULTS.md
#   14 summary      the recipe's last word: FSDD's speaker summary, the demo's example transcription
#
# The calling recipe sets: stage, stop_stage, conf, nj, overrides, and where used corpus, source, decode_opts,
# decode_key, score_opts, ngpu, feature_cache, train_prep, tune_opts; then calls
#   corpus_stages DOWNLOAD_DIR MANIFEST_DIR MARKER_DIR       (stages 1-2)
#   model_stages  MANIFEST_DIR EXP TRAIN DEV "TEST ..."      (stages 3-8)
#   lm_stages     MANIFEST_DIR EXP ARPA DEV "TEST ..."       (stages 10-13; stage 9, making ARPA, is the recipe's)

set -euo pipefail

if [ -n "${ASR:-}" ]; then :
elif [ -x "$(dirname "${BASH_SOURCE[0]}")/../../.venv/bin/asr" ]; then ASR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv/bin/asr"
else ASR=asr
fi

# torchrun (data-parallel training) from the same environment as asr
TORCHRUN="$(dirname "$(command -v "$ASR")")/torchrun"
[ -x "$TORCHRUN" ] || TORCHRUN=torchrun

log() { echo "[$(date '+%Y-%m-%d %H:%M:%S')] $*"; }

# run_stage [--key KEY] N NAME MARKER_DIR CMD...: run CMD unless N is outside --stage..--stop-stage or already
# done. A stage whose inputs can change between runs (the folds FSDD's summary covers) passes a KEY naming them:
# its marker keeps the key, and a marker with another key counts as not done.
run_stage() {
  local key="" keyed=""
  if [ "$1" = --key ]; then key=$2; keyed=1; shift 2; fi
  local n=$1 name=$2 markers=$3
  shift 3
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  local marker="$markers/.done/stage$n.$name" redo=""
  if [ -f "$marker" ]; then
    if [ -z "$keyed" ] || [ "$(sed -n 2p "$marker")" = "key: $key" ]; then
      log "stage $n $name: already done, skipped (remove $marker to redo)"
      return 0
    fi
    redo="; redone, its inputs changed"
  fi
  local t0=$SECONDS
  if ! "$@"; then
    log "stage $n $name: FAILED after $((SECONDS - t0)) s ($markers)" >&2
    exit 1
  fi
  mkdir -p "$markers/.done"
  { date '+%Y-%m-%d %H:%M:%S'; [ -z "$keyed" ] || echo "key: $key"; } > "$marker"
  log "stage $n $name: done in $((SECONDS - t0)) s ($markers$redo)"
}

corpus_stages() {
  local download_dir=$1 manifests=$2 markers=$3
  local src_opt=()
  [ -n "$source" ] && src_opt=(--source "$source")
  # shellcheck disable=SC2086
  run_stage 1 download "$markers" "$ASR" download "$corpus" "$download_dir" "${src_opt[@]}" ${download_opts:-}
  # shellcheck disable=SC2086
  run_stage 2 manifests "$markers" "$ASR" prepare "$corpus" "$download_dir" "$manifests" ${prepare_opts:-}
}

# (functions run as a stage's command execute inside `if`, where `set -e` does not apply: they check
# every status themselves)

# _decode_sets MANIFESTS MODEL DECODE_DIR "SET ..." [DECODE OPTION ...]: each set into DECODE_DIR/SET/hyp.jsonl,
# --nj at a time
_decode_sets() {
  local manifests=$1 model=$2 dir=$3 sets=$4
  shift 4
  local set running=0 failed=0
  for set in $sets; do
    "$ASR" decode --model "$model" --manifest "$manifests/$set.jsonl" --out "$dir/$set/hyp.jsonl" "$@" > /dev/null &
    running=$((running + 1))
    if [ "$running" -ge "$nj" ]; then wait -n || failed=1; running=$((running - 1)); fi
  done
  while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
  return "$failed"
}

# _score_sets MANIFESTS EXP DECODE_DIR SUFFIX MODEL_LABEL SET...: a "<set><suffix>" row of EXP/RESULTS.md per set
_score_sets() {
  local manifests=$1 exp=$2 dir=$3 suffix=$4 label=$5
  shift 5
  local set
  for set in "$@"; do
    # shellcheck disable=SC2086
    "$ASR" score --manifest "$manifests/$set.jsonl" --hyp "$dir/$set/hyp.jsonl" --out-dir "$dir/$set" \
      --name "$set$suffix" --results "$exp/RESULTS.md" --model-label "$label" --config-label "$conf" \
      ${score_opts:-} || return 1
  done
}

# _rescore MANIFESTS EXP SET...: stage 7; the package (stage 8) embeds these rows, so its marker goes
_rescore() {
  local manifests=$1 exp=$2
  shift 2
  rm -f "$exp/.done/stage8.package"
  _score_sets "$manifests" "$exp" "$exp/decode" "" "$exp/model.pt" "$@"
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

# model_stages MANIFESTS EXP TRAIN DEV "TEST ...": stages 3-8. With train_prep=false, stages 3-4 are left out
# and `asr train` computes the statistics and the tokenizer itself (the demo: its features are then cached in
# memory before the training time budget starts).
model_stages() {
  local manifests=$1 exp=$2 train_set=$3 dev_set=$4 test_sets=$5
  local dev_opt=() prep_opt=() cache_opt=()
  [ -n "$dev_set" ] && dev_opt=(data.dev="$manifests/$dev_set.jsonl")
  mkdir -p "$exp"
  if [ "${train_prep:-true}" = true ]; then
    # shellcheck disable=SC2086
    run_stage 3 stats "$exp" "$ASR" stats --config "$conf" "$manifests/$train_set.jsonl" "$exp/cmvn.json" $overrides
    # shellcheck disable=SC2086
    run_stage 4 tokenizer "$exp" "$ASR" tokenizer --config "$conf" "$manifests/$train_set.jsonl" "$exp/tokenizer.json" \
      $overrides
    prep_opt=(data.cmvn="$exp/cmvn.json" tokenizer.file="$exp/tokenizer.json")
  fi
  if [ "${feature_cache:-false}" = true ]; then
    # shellcheck disable=SC2086
    run_stage 4 features "$exp" "$ASR" features --config "$conf" "$manifests/$train_set.jsonl" "$exp/features" \
      $overrides
    cache_opt=(data.feature_cache="$exp/features")
  fi
  # shellcheck disable=SC2086
  run_stage 5 train "$exp" _train --config "$conf" data.train="$manifests/$train_set.jsonl" "${dev_opt[@]}" \
    "${cache_opt[@]}" "${prep_opt[@]}" train.exp_dir="$exp" $overrides
  # a recipe whose decode options can change between runs sets decode_key: stages 6-7 are redone when it changes
  local key_opt=()
  [ -n "${decode_key:-}" ] && key_opt=(--key "$decode_key")
  # shellcheck disable=SC2086
  run_stage "${key_opt[@]}" 6 decode "$exp" _decode_sets "$manifests" "$exp/model.pt" "$exp/decode" "$test_sets" \
    ${decode_opts:-}
  # shellcheck disable=SC2086
  run_stage "${key_opt[@]}" 7 score "$exp" _rescore "$manifests" "$exp" $test_sets
  run_stage 8 package "$exp" "$ASR" package "$exp" "$exp/final.pt"
}

# _tune TABLE ARGS...: `asr tune` (with $tune_opts), its whole table kept in TABLE, the best setting printed
_tune() {
  local table=$1
  shift
  mkdir -p "$(dirname "$table")"
  # shellcheck disable=SC2086
  "$ASR" tune "$@" ${tune_opts:-} | tee "$table" | tail -2
}

# lm_stages MANIFESTS EXP ARPA DEV "TEST ...": stages 10-13 with the word LM ARPA (made by the recipe's stage 9):
# the lexicon spelled by the model, LM weight and word bonus tuned on DEV (EXP/model-lm.pt), then every test set
# decoded with beam search + LM and scored as "<set>+lm" rows of EXP/RESULTS.md
lm_stages() {
  local manifests=$1 exp=$2 arpa=$3 dev=$4 test_sets=$5
  local lexicon="$exp/lm/lexicon.txt"
  run_stage 10 lexicon "$exp" "$ASR" lexicon --model "$exp/model.pt" "$arpa" "$lexicon"
  run_stage 11 tune "$exp" _tune "$exp/lm/tune.txt" --model "$exp/model.pt" --manifest "$manifests/$dev.jsonl" \
    --lm "$arpa" --lexicon "$lexicon" --out "$exp/model-lm.pt"
  run_stage 12 lm-decode "$exp" _decode_sets "$manifests" "$exp/model-lm.pt" "$exp/decode-lm" "$test_sets" \
    --lm "$arpa" --lexicon "$lexicon"
  # shellcheck disable=SC2086
  run_stage 13 lm-score "$exp" _score_sets "$manifests" "$exp" "$exp/decode-lm" "+lm" \
    "$exp/model-lm.pt ($(basename "$arpa"))" $test_sets
}
