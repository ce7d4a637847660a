#!/usr/bin/env bash
# The main job on the embedded real MNIST digits: a reduced noise sweep (both models,
# both corruptions, 5 alphas, 2 seeds, 30 epochs; a few minutes on 2 CPU cores).
# Writes runs/demo/{results.csv,summary.csv,config.json,noise_response.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/qrobust sweep --dataset mnist --alphas 0:0.8:0.2 --seeds 2 --epochs 30 --out runs/demo "$@"
