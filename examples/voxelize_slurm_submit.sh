#!/bin/bash
# Submit a partitioned cache build to Slurm: the parts as an array job, then the completion
# (`voxelize` without --part: manifest, meta_info, statistics) once every part succeeded.
#
#   DATA_ROOT=/shared/data CACHE=/shared/cache VOXELIZE_ARGS="--S 8 --val seq003" \
#       examples/voxelize_slurm_submit.sh
set -euo pipefail
: "${DATA_ROOT:?set DATA_ROOT}" "${CACHE:?set CACHE}"
export DATA_ROOT CACHE VOXELIZE_ARGS=${VOXELIZE_ARGS:---S 8}
HERE=$(cd "$(dirname "$0")" && pwd)

parts=$(sbatch --parsable "$HERE/voxelize_slurm.sbatch")
sbatch --parsable --dependency="afterok:${parts%%;*}" --job-name=spikeprep-complete \
    --cpus-per-task=1 --mem=4G --time=01:00:00 \
    --wrap "spikeprep voxelize '$DATA_ROOT' '$CACHE' $VOXELIZE_ARGS"
