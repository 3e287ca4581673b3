#!/usr/bin/env bash
# Stage 2 of the 0.3.0 recipe: fine-tune both 0.2.0 networks with the robustness augmentation
# (bundle/configs/robust_*.json), one after the other, logging wall times. Resumable: run it again
# with the same RUNS folder and each network continues from its last epoch checkpoint.
# Stage 1 (train_segmenter.json, train_classifier.json) writes RUNS/segmenter/models/model.pt and
# RUNS/classifier/models/model_classifier.pt; INIT names another folder holding those two files.
#   bash training/train_robust_stage.sh DATA/kaggle_3m [RUNS] [INIT]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: train_robust_stage.sh DATA/kaggle_3m [RUNS]}
runs=${2:-runs}
init=${3:-}
python=${PYTHON:-.venv/bin/python}
mkdir -p "$runs"
for net in segmenter classifier; do
    if [[ -f $runs/${net}_robust/models/checkpoint_final.pt ]]; then
        echo "$net: already finished ($runs/${net}_robust)"; continue
    fi
    weights=$runs/$net/models/$([[ $net == segmenter ]] && echo model.pt || echo model_classifier.pt)
    [[ -n $init ]] && weights=$init/$(basename "$weights")
    echo "$net: start $(date -u +%FT%TZ), from $weights"
    "$python" -m monai.bundle run --init_weights "$weights" \
        --config_file "['bundle/configs/train_${net}.json','bundle/configs/robust_${net}.json']" \
        --dataset_dir "$data" --output_dir "$runs/${net}_robust" >> "$runs/${net}_robust.log" 2>&1
    echo "$net: end $(date -u +%FT%TZ)"
done
