#!/usr/bin/env bash
# The project's MFF training run (issue: "trained by us"): DRPL pairs from photos that are on the machine,
# evaluated on real Lytro with the official protocol. Idempotent: rerun it to resume from WORKDIR.
#
#   tools/train_mff_drpl.sh [WORKDIR] [extra main.py flags, e.g. --config.mi_weight=0 for the ablation]
#
# PAIRS picks the pair recipe: drpl_mff/x8 (default: DRPL's 7×7, σ = 2 blur) or drpl_mff/x8_defocus (each side's
# blur drawn from σ 0.5–5; see README "MFF trained from scratch").
#
# Needs ../shared beside the clone (MEFB and Lytro samples; see README "Getting the data and the weights"),
# or set MEFB_DIR / LYTRO_ROOT. Photos and datasets go to DATA (default ~/mgdn_data), never into the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${1:-$HOME/mgdn_runs/mff_drpl}
shift || true
DATA=${DATA:-$HOME/mgdn_data}
MEFB_DIR=${MEFB_DIR:-../shared/data/mefb}
LYTRO_ROOT=${LYTRO_ROOT:-../shared/data}
PAIRS=${PAIRS:-drpl_mff/x8}
if [ ! -d "$DATA/photos/drpl_mff/images" ]; then
  python -m data_pipelines.sharp_photos --out="$DATA/photos/drpl_mff" --skimage --mefb="$MEFB_DIR"
fi
python -m data_pipelines.prepare --dataset="$PAIRS" --manual_dir="$DATA/photos" --data_dir="$DATA/tfds"
python -m data_pipelines.prepare --dataset=lytro --manual_dir="$LYTRO_ROOT" --data_dir="$DATA/tfds"
exec python main.py --config=configs/mff.py --workdir="$WORKDIR" \
  --config.data.train_dataset="$PAIRS" --config.data.eval_datasets="('lytro:test',)" \
  --config.data.data_dir="$DATA/tfds" --config.batch_size=4 --config.num_train_steps=10000 \
  --config.eval_every_steps=500 --config.checkpoint_every_steps=250 --config.log_every_steps=50 "$@"
