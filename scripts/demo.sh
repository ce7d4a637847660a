#!/usr/bin/env bash
# The main job on the embedded real MNIST digits: the paper's noise-response sweep at the paper's settings
# (100 epochs: the QNN has converged), reduced to 5 alphas and 2 seeds (both models, both corruptions;
# a few minutes on 2 CPU cores). Writes runs/demo/{results.csv,summary.csv,config.json,noise_response.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/qrobust sweep --dataset mnist --alphas 0:0.8:0.2 --seeds 2 --out runs/demo "$@"
