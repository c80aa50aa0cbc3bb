#!/bin/bash
# PinSage quality on S3-Rec Beauty (full ranking): data, graph, walks once, then one PinSage
# configuration trained, embedded and evaluated. Outputs under $OUT (default out/beauty-pinsage).
#   Cluster/bench/pinsage-beauty.sh NAME SPLIT [pinsage train options…]
# e.g. the selected configuration, tuned on validation, then evaluated once on test:
#   Cluster/bench/pinsage-beauty.sh sel validation --id-dim 64 --layers 1 --steps 4000 --lr 0.01 \
#       --no-output-layer --hold-out 2 --sequence-positives 0.5 --softmax-temperature 0.05 --lr-decay cosine
#   (then: mosaic graph evaluate --walks $OUT/bwh --embeddings $OUT/runs/sel/emb --split test)
set -euo pipefail
cd "$(dirname "$0")/../.."
M=.build/release/mosaic
OUT=${OUT:-out/beauty-pinsage}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
name=$1; split=$2; shift 2
[ -x $M ] || swift build -c release
if [ ! -d $OUT/bwh ]; then
    $M adapt beauty --out $OUT/beauty
    $M graph build --data $OUT/beauty --out $OUT/bgraph --hold-out 2
    $M graph walks --graph $OUT/bgraph --out $OUT/bwh --walks 2048 --restart 0.5 --top 10 \
        --hard-ranks 200:2000 --hard-count 32
fi
d=$OUT/runs/$name
rm -rf $d; mkdir -p $d
$M pinsage train --data $OUT/beauty --walks $OUT/bwh --out $d/model "$@" | grep PINSAGE-TRAIN
tags=(); for a in "$@"; do [ "$a" = --tags ] && tags=(--tags); done  # embed must match training
$M pinsage embed "${tags[@]}" --data $OUT/beauty --walks $OUT/bwh --model $d/model --out $d/emb | grep PINSAGE-EMBED
$M graph evaluate --walks $OUT/bwh --embeddings $d/emb --split "$split"
