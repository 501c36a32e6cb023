#!/bin/bash -l
# Multi-node corpuslab training under Slurm: one torchrun per node, one process per GPU, DDP over all of them.
#
#     sbatch examples/slurm_train.sh configs/my-experiment.yaml training.batch_size=64
#
# Rank 0 (first GPU of the first node) builds the shared stages (prepare, curate, pack), trains with the others,
# evaluates and reports; every other process waits for each stage's manifest, then trains its share of every
# global batch. So `output_dir` must be on a filesystem every node sees (NFS, Lustre, GPFS...), and the global
# batch (training.batch_size) must be a multiple of the number of processes (nodes x GPUs per node); use
# training.micro_batch_size when a process's share does not fit in GPU memory.
#
# As in the compression seed's DDP example (2 nodes x 4 A100s); adapt the #SBATCH lines to your cluster.

#SBATCH --job-name=corpuslab-train
#SBATCH --open-mode=append
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1          # one torchrun per node; it starts one process per GPU
#SBATCH --gres=gpu:a100:4
#SBATCH --cpus-per-task=32

set -euo pipefail
CONFIG=${1:?usage: sbatch examples/slurm_train.sh CONFIG.yaml [key.path=value ...]}
shift
GPUS_PER_NODE=${GPUS_PER_NODE:-4}   # keep equal to --gres above

cd "${SLURM_SUBMIT_DIR:-$PWD}"
# Activate the environment corpuslab is installed in, e.g.:
# source ~/miniconda3/etc/profile.d/conda.sh && conda activate corpuslab

export PYTHONUNBUFFERED=1
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
echo "nodes: $SLURM_NNODES x $GPUS_PER_NODE GPUs; rendezvous at $MASTER_ADDR:$MASTER_PORT"

# `run` trains and then evaluates and reports on rank 0; use `train` to stop after training.
srun --ntasks="$SLURM_NNODES" --ntasks-per-node=1 \
    torchrun --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS_PER_NODE" \
        --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" \
        -m corpuslab.cli run --config "$CONFIG" "$@"
