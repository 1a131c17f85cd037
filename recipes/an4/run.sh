#!/usr/bin/env bash
# CMU AN4 (alphanumeric census utterances, about an hour of speech): the small benchmark of
# deepspeech.pytorch and ESPnet. SPHERE audio, read directly with soundfile.
# Example: ./run.sh   (downloads an4_sphere.tar.gz from CMU), or ./run.sh --source /data/an4_sphere.tar.gz
set -euo pipefail

# --- options ---
stage=1                 # first stage to run (1 download ... 8 package)
stop_stage=8            # last stage to run
conf=conf/an4.yaml      # training config
source=""               # local an4_sphere.tar.gz, or a folder holding it or the extracted an4/
exp=exp/an4             # experiment folder
nj=2                    # test sets decoded in parallel
overrides=""            # extra config overrides
ngpu=1                  # data-parallel training processes (GPUs; gloo processes on a CPU-only machine)
feature_cache=false     # true: precompute training features into memory-mapped shards (stage 4)
# --- end options ---
path_opts="source conf exp"
. "$(dirname "$0")/../lib/parse_options.sh"
cd "$(dirname "$0")"  # defaults are relative to the recipe folder
. ../lib/template.sh

corpus=an4
corpus_stages "$exp/download" "$exp/data" "$exp"
model_stages "$exp/data" "$exp" train dev "dev test"
log "results: $exp/RESULTS.md"
