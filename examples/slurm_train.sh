#!/bin/bash -l
# Multi-node corpuslab training under Slurm: one torchrun per node, one process per GPU, DDP over all of them.
#
#     sbatch examples/slurm_train.sh configs/my-experiment.yaml training.batch_size=64
#
# Rank 0 builds the shared stages (prepare, curate, pack), trains with the others, evaluates and reports; every
# other process waits for each stage, then trains its share of every global batch. The c10d rendezvous hands out
# ranks in the order the nodes arrive, so rank 0 may be on any node: no --node_rank is needed. The stages reach
# the other nodes through either
#   - an `output_dir` on a filesystem every node sees (NFS, Lustre, GPFS...): they wait for rank 0's folders; or
#   - a node-local `output_dir` (or an s3:// one) and a shared stage cache (`cache.url=s3://bucket/stages`, or a
#     shared folder): they download rank 0's stages from it as each one is uploaded.
# The global batch (training.batch_size) must be a multiple of the number of processes (nodes x GPUs per node);
# use training.micro_batch_size when a process's share does not fit in GPU memory.
#
# As in the compression seed's DDP example (2 nodes x 4 A100s); adapt the #SBATCH lines to your cluster.
# tests/test_multinode.py runs this script on one machine (srun and scontrol replaced by stand-ins that start
# one "node" per task on 127.0.0.1), both layouts, and compares the curve with a single process's.

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
COMMAND=${COMMAND:-run}              # run: train, then evaluate and report on rank 0; train: stop after training

cd "${SLURM_SUBMIT_DIR:-$PWD}"
# Activate the environment corpuslab is installed in, e.g.:
# source ~/miniconda3/etc/profile.d/conda.sh && conda activate corpuslab

export PYTHONUNBUFFERED=1
# The first node's name (awk reads every line: `head -n 1` would stop scontrol with SIGPIPE, which pipefail
# turns into a failed job).
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk 'NR == 1')
# A port of the job's own, so two jobs whose first node is the same machine do not meet at one rendezvous.
MASTER_PORT=${MASTER_PORT:-$((29500 + SLURM_JOB_ID % 10000))}
echo "nodes: $SLURM_NNODES x $GPUS_PER_NODE GPUs; rendezvous at $MASTER_ADDR:$MASTER_PORT"

# --kill-on-bad-exit: a node that fails stops the others instead of leaving them waiting in a collective.
srun --ntasks="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    torchrun --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS_PER_NODE" \
        --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" \
        -m corpuslab.cli "$COMMAND" --config "$CONFIG" "$@"
