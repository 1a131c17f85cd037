#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): real human speech, ten words, trains on a laptop CPU.
# Two evaluations: the conventional split (takes 0-4 of every speaker are the test set) and
# speaker-independent leave-one-speaker-out (one model per held-out speaker; mean and worst speaker).
# More voices for every training set (stage 2 extra): the digit words of a Speech Commands copy (hundreds of
# real speakers, none of them FSDD's) and synthetic digits of every espeak-ng/flite voice (--synth-takes).
# Example: ./run.sh --source ../../../shared/data/fsdd
#          ./run.sh --source ../../../shared/data/fsdd --speech-commands ../../../shared/data/speech_commands \
#            --synth-takes 2 --exp exp/fsdd-voices
set -euo pipefail

# --- options ---
stage=1                  # first stage to run (1 download, 2 manifests, 3-8 per model, 14 speaker summary)
stop_stage=14            # last stage to run
conf=conf/fsdd.yaml      # training config
source=""                # local copy of the dataset (archive, or folder holding recordings/); empty = GitHub
exp=exp/fsdd             # experiment root
nj=2                     # test sets decoded in parallel
overrides=""             # extra config overrides for every model, e.g. "train.max_minutes=1"
conventional=true        # run the conventional split's model (false: leave-one-speaker-out folds only)
loso=true                # also run the leave-one-speaker-out evaluation
loso_speakers=""         # held-out speakers to run folds for, e.g. "jackson theo" (empty: every speaker)
ngpu=1                   # data-parallel training processes (GPUs; gloo processes on a CPU-only machine)
feature_cache=false      # true: precompute training features into memory-mapped shards (stage 4)
speech_commands=""       # Speech Commands copy (as its --source): its zero..nine clips join every training set
synth_takes=0            # takes per synthetic voice and digit joining every training set (0: none)
synth_opts=""            # more options for asr synth's digits, e.g. "--pitch-range 30 200"
seeds=""                 # one model per seed for each evaluation, decoded together, e.g. "1 2 3" (empty: one model)
warps=""                 # test-time mel-axis warps of the decoding, e.g. 0.9,0.95,1,1.05,1.1 (empty: none)
# --- end options ---
path_opts="source conf exp speech_commands"
. "$(dirname "$0")/../lib/parse_options.sh"
cd "$(dirname "$0")"  # defaults are relative to the recipe folder
. ../lib/template.sh

corpus=fsdd
decode_opts="--choices $exp/data/words.txt"  # decoding restricted to the ten words

# --seeds and --warps are checked before anything runs (a typo must not cost the trainings before the decode)
case "$seeds$warps" in *$'\n'*) echo "$0: --seeds and --warps take one line each" >&2; exit 2 ;; esac
read -ra seed_list <<< "$seeds"
if [ -n "$seeds" ] && [ ${#seed_list[@]} -eq 0 ]; then
  echo "$0: --seeds: no seed in '$seeds' (e.g. --seeds \"1 2 3\")" >&2
  exit 2
fi
seen=" "
for seed in "${seed_list[@]}"; do
  if ! [[ $seed =~ ^(0|[1-9][0-9]*)$ ]]; then
    echo "$0: --seeds: '$seed' is not a whole number (e.g. --seeds \"1 2 3\")" >&2
    exit 2
  fi
  [[ $seen == *" $seed "* ]] && { echo "$0: --seeds: seed $seed is given twice" >&2; exit 2; }
  seen+="$seed "
done
seeds="${seed_list[*]}"  # one space between seeds: the stage keys and labels below
if [ -n "$warps" ]; then
  IFS=, read -ra warp_list <<< "$warps"
  [[ $warps =~ ^[^,](.*[^,])?$ && $warps != *,,* ]] || warp_list+=("")  # an empty entry is refused below
  for w in "${warp_list[@]}"; do
    if ! [[ $w =~ ^[0-9]*\.?[0-9]+$ ]] || ! awk -v w="$w" 'BEGIN { exit !(w >= 0.5 && w <= 2) }'; then
      echo "$0: --warps: '$w' is not a warp between 0.5 and 2 (e.g. --warps 0.9,0.95,1,1.05,1.1)" >&2
      exit 2
    fi
  done
  decode_opts+=" --warps $warps"
fi
decode_key="warps ${warps:-none}"  # every decode and score stage is redone when --warps changes

corpus_stages "$exp/download" "$exp/data" "$exp"

# extra_voices: EXP/data/extra.jsonl (the extra digit recordings), then train-extra.jsonl beside every train.jsonl
extra_voices() {
  local parts=() split
  if [ -n "$speech_commands" ]; then
    "$ASR" download speech_commands "$exp/extra/speech_commands" --source "$speech_commands" --quiet || return 1
    "$ASR" prepare speech_commands "$exp/extra/speech_commands" "$exp/extra/speech_commands/data" --quiet \
      > /dev/null || return 1
    for split in train dev test; do parts+=("$exp/extra/speech_commands/data/$split.jsonl"); done
  fi
  if [ "$synth_takes" -gt 0 ]; then
    rm -rf "$exp/extra/synth"
    "$ASR" synth "$exp/extra/synth" --words "$exp/data/words.txt" --takes "$synth_takes" --quiet \
      $synth_opts || return 1
    parts+=("$exp/extra/synth/words.jsonl")
  fi
  "$ASR" merge "$exp/data/extra.jsonl" "${parts[@]}" --texts "$exp/data/words.txt" || return 1
  for split in "$exp"/data/*/train.jsonl; do
    "$ASR" merge "${split%.jsonl}-extra.jsonl" "$split" "$exp/data/extra.jsonl" > /dev/null || return 1
  done
}
# fsdd_models MANIFESTS EXP: stages 3-8 for EXP's model, its test WER then in result_wer. With --seeds: one model
# per seed in EXP/seed-N (each decoded and scored alone), then all of them decoded together (stage 6 ensemble,
# 7 ensemble-score) into EXP/decode-ensemble/test, scored as the "test+ensemble" row of EXP/RESULTS.md
fsdd_models() {
  local manifests=$1 dir=$2 seed base=$overrides models=() key label
  if [ -z "$seeds" ]; then
    model_stages "$manifests" "$dir" "$train_set" dev test
    result_wer=$dir/decode/test/wer.json
    return
  fi
  for seed in $seeds; do
    overrides="$base train.seed=$seed"
    model_stages "$manifests" "$dir/seed-$seed" "$train_set" dev test
    models+=("$dir/seed-$seed/model.pt")
  done
  overrides=$base
  result_wer=$dir/decode-ensemble/test/wer.json
  key="seeds $seeds, $decode_key"
  label="ensemble of seeds $seeds"
  [ -n "$warps" ] && label+=", warps $warps"
  local more=() m  # the template's _decode_sets with the other seeds' models as more --model options
  for m in "${models[@]:1}"; do more+=(--model "$m"); done
  # shellcheck disable=SC2086
  run_stage --key "$key" 6 ensemble "$dir" _decode_sets "$manifests" "${models[0]}" "$dir/decode-ensemble" test \
    "${more[@]}" $decode_opts
  run_stage --key "$key" 7 ensemble-score "$dir" _score_sets "$manifests" "$dir" "$dir/decode-ensemble" +ensemble \
    "$label" test
}

train_set=train
if [ -n "$speech_commands" ] || [ "$synth_takes" -gt 0 ]; then
  run_stage 2 extra "$exp" extra_voices
  train_set=train-extra
fi

if [ "$conventional" = true ]; then
  fsdd_models "$exp/data/conventional" "$exp/conventional"
fi
if [ "$loso" = true ]; then
  folds=()
  if [ -n "$loso_speakers" ]; then
    for speaker in $loso_speakers; do
      if [ -d "$exp/data/loso-$speaker" ]; then
        folds+=("loso-$speaker")
      elif compgen -G "$exp/data/loso-*/" > /dev/null; then
        known=()
        for fold in "$exp"/data/loso-*/; do fold=${fold%/}; known+=("${fold##*/loso-}"); done
        echo "$0: --loso-speakers: no speaker '$speaker' in $exp/data (speakers: ${known[*]})" >&2
        exit 2
      fi
    done
  else
    for fold in "$exp"/data/loso-*/; do
      [ -d "$fold" ] && folds+=("$(basename "$fold")")  # none before the manifests exist (--stop-stage 1)
    done
  fi
  wers=()
  for fold in "${folds[@]}"; do
    fsdd_models "$exp/data/$fold" "$exp/$fold"
    [ -f "$result_wer" ] && wers+=("$result_wer")
  done
  if [ ${#wers[@]} -gt 0 ]; then
    # keyed by its folds: a summary of other folds (an earlier --loso-speakers, or folds not decoded then) is redone
    run_stage --key "${wers[*]}, seeds ${seeds:-none}, $decode_key" 14 summary "$exp" "$ASR" summarize "${wers[@]}" \
      --out "$exp/RESULTS-speaker-independent.md" --title "FSDD leave-one-speaker-out ($conf)"
  fi
fi
if [ "$conventional" = true ]; then
  log "conventional split: $exp/conventional/RESULTS.md"
fi
