#!/usr/bin/env bash
# Offline demo: train on the small synthetic corpus in data/synth, score both test sets, transcribe a file.
# Usage: recipes/demo/run.sh [--data DIR] [--exp DIR] [--conf FILE] [key=value overrides for asr train ...]
set -euo pipefail
cd "$(dirname "$0")/../.."

data=data/synth
exp=exp/demo
conf=conf/demo.yaml
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --conf) conf=$2; shift 2 ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *=*) overrides+=("$1"); shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
asr=.venv/bin/asr
[ -x "$asr" ] || asr=asr

log() { echo "[$(date +%H:%M:%S)] $*"; }

log "stage 1: manifests from $data"
$asr prepare librispeech "$data" "$exp/data" --quiet

log "stage 2: training (config $conf)"
start=$(date +%s)
$asr train --config "$conf" data.train="$exp/data/train.jsonl" data.dev="$exp/data/dev.jsonl" \
  train.exp_dir="$exp" "${overrides[@]}"
log "training took $(( $(date +%s) - start )) s"

for set in test-seen test-unseen; do
  log "stage 3: decoding $set"
  $asr decode --model "$exp/model.pt" --manifest "$exp/data/$set.jsonl" --out "$exp/decode/$set/hyp.jsonl" --quiet
done

log "stage 4: scoring"
for set in test-seen test-unseen; do
  $asr score --manifest "$exp/data/$set.jsonl" --hyp "$exp/decode/$set/hyp.jsonl" \
    --out-dir "$exp/decode/$set" --name "$set"
done

log "stage 5: beam search with a 3-gram LM of the training transcripts (asr lm, asr tune on dev)"
if $asr lm "$exp/data/train.jsonl" "$exp/lm" --model "$exp/model.pt" > /dev/null &&
   $asr tune --model "$exp/model.pt" --manifest "$exp/data/dev.jsonl" --lm "$exp/lm/lm.arpa" \
     --lexicon "$exp/lm/lexicon.txt" --out "$exp/model-lm.pt" --quiet | tail -1; then
  for set in test-seen test-unseen; do
    $asr decode --model "$exp/model-lm.pt" --manifest "$exp/data/$set.jsonl" --out "$exp/decode-lm/$set/hyp.jsonl" \
      --lm "$exp/lm/lm.arpa" --lexicon "$exp/lm/lexicon.txt" --quiet > /dev/null
    $asr score --manifest "$exp/data/$set.jsonl" --hyp "$exp/decode-lm/$set/hyp.jsonl" \
      --out-dir "$exp/decode-lm/$set" --name "$set (greedy above; beam + LM)"
  done
else
  log "LM decoding skipped (needs the [lm] extra: pip install '.[lm]')"
fi

example=$(find "$data/test-unseen" \( -name '*.ogg' -o -name '*.flac' \) | sort | sed -n 1p)
log "stage 6: transcribing $example"
echo "reference:  $(grep -h "^$(basename "${example%.*}") " "$(dirname "$example")"/*.trans.txt | cut -d' ' -f2-)"
echo "hypothesis: $($asr transcribe --model "$exp/model.pt" "$example")"
log "model bundle: $exp/model.pt"
