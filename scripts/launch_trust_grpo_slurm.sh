#!/usr/bin/env bash
# Trust-GRPO on a SLURM allocation: the last NUM_JUDGE_NODES nodes serve the thinking judge (`vllm serve` with one
# data-parallel replica per GPU), the others train (`accelerate launch` with ZeRO-3 across the nodes), handed the judge
# servers' URLs as replicas (judge_base_url). Run it as the batch script of the allocation, e.g. 4 training nodes and
# one judge node of 8 GPUs each:
#
#   sbatch --nodes=5 --gpus-per-node=8 --exclusive --ntasks-per-node=1 scripts/launch_trust_grpo_slurm.sh \
#       -- --gradient_accumulation_steps 1
#
# Each training node runs scripts/launch_trust_grpo.sh with NUM_MACHINES, MACHINE_RANK and MAIN_PROCESS_IP set (the
# first training node is rank 0 and the main process) and JUDGE_URL the judge replicas: it checks the batch, waits
# until every judge replica scores a probe, then starts accelerate. Its settings (CONFIG, OVERRIDES,
# ACCELERATE_CONFIG, WAIT_TIMEOUT, VLLM_MODE=colocate, arguments after --) apply as there.
#
# Settings (environment variables):
#   NODES              the allocation's host names (default: `scontrol show hostnames $SLURM_JOB_NODELIST`)
#   NUM_JUDGE_NODES    nodes that serve the judge, taken from the end of NODES (default 1)
#   GPUS_PER_NODE      GPUs per node (default $SLURM_GPUS_ON_NODE, else 8)
#   JUDGE_MODEL        judge checkpoint (default bunny127/SophiaVL-R1-Thinking-Reward-Model-3B)
#   JUDGE_PORT         port of each judge node's server (default 8001)
#   JUDGE_DP           data-parallel replicas of the judge per judge node (default GPUS_PER_NODE: a 3B judge fits one
#                      GPU; vLLM balances a node's requests over them behind one port)
#   MAIN_PROCESS_PORT  port of the training rank 0 (default 29500)
#   LOG_DIR            where logs go (default outputs/logs)
#   DRY_RUN=1          print each node's commands, start nothing (NODES must then be set)
set -euo pipefail

cd "$(dirname "$0")/.."
NUM_JUDGE_NODES=${NUM_JUDGE_NODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
JUDGE_MODEL=${JUDGE_MODEL:-bunny127/SophiaVL-R1-Thinking-Reward-Model-3B}
JUDGE_PORT=${JUDGE_PORT:-8001}
JUDGE_DP=${JUDGE_DP:-$GPUS_PER_NODE}
MAIN_PROCESS_PORT=${MAIN_PROCESS_PORT:-29500}
LOG_DIR=${LOG_DIR:-outputs/logs}
DRY_RUN=${DRY_RUN:-0}
EXTRA_ARGS=()
if [[ $# -gt 0 ]]; then
    [[ $1 == "--" ]] && shift
    EXTRA_ARGS=("$@")
fi

die() {
    echo "error: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------------------------------
# The nodes: training first, the judge's last
# ---------------------------------------------------------------------------------------------------------------------
if [[ -z ${NODES:-} ]]; then
    [[ -n ${SLURM_JOB_NODELIST:-} ]] || die "Not inside a SLURM allocation: run it with sbatch, or set NODES (DRY_RUN=1)."
    NODES=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | paste -sd' ' -)
fi
read -r -a ALL_NODES <<<"$NODES"
NUM_NODES=${#ALL_NODES[@]}
NUM_TRAIN_NODES=$((NUM_NODES - NUM_JUDGE_NODES))
((NUM_JUDGE_NODES >= 1)) || die "NUM_JUDGE_NODES must be >= 1 (a judge inside the training nodes: scripts/launch_trust_grpo.sh)."
((NUM_TRAIN_NODES >= 1)) ||
    die "$NUM_NODES node(s) and NUM_JUDGE_NODES=$NUM_JUDGE_NODES leave no training node: allocate more nodes."
TRAIN_NODES=("${ALL_NODES[@]:0:NUM_TRAIN_NODES}")
JUDGE_NODES=("${ALL_NODES[@]:NUM_TRAIN_NODES}")
JUDGE_URLS=$(printf "http://%s:$JUDGE_PORT/v1\n" "${JUDGE_NODES[@]}" | paste -sd, -)
MAIN_PROCESS_IP=${TRAIN_NODES[0]}
echo "Nodes: training ${TRAIN_NODES[*]} ($NUM_TRAIN_NODES x $GPUS_PER_NODE GPUs, main process on $MAIN_PROCESS_IP)," \
    "judge ${JUDGE_NODES[*]} ($JUDGE_DP data-parallel replicas each); judge replicas $JUDGE_URLS" >&2
mkdir -p "$LOG_DIR"

# One task on one node, in the background.
on_node() {  # on_node NODE LOG CMD...
    local node=$1 log=$2
    shift 2
    echo "[$node] $* > $log" >&2
    [[ $DRY_RUN == 1 ]] && return
    srun --nodes=1 --ntasks=1 --nodelist="$node" --kill-on-bad-exit=1 "$@" >"$log" 2>&1 &
    PIDS+=($!)
}
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------------------------------
# The judge nodes: vLLM with one replica per GPU behind one port, prefix caching on (scripts/serve_judge.sh)
# ---------------------------------------------------------------------------------------------------------------------
for node in "${JUDGE_NODES[@]}"; do
    on_node "$node" "$LOG_DIR/judge_$node.log" env HOST=0.0.0.0 \
        scripts/serve_judge.sh vllm "$JUDGE_MODEL" "$JUDGE_PORT" --data-parallel-size "$JUDGE_DP"
done

# ---------------------------------------------------------------------------------------------------------------------
# The training nodes: scripts/launch_trust_grpo.sh on each, rank by rank
# ---------------------------------------------------------------------------------------------------------------------
for rank in "${!TRAIN_NODES[@]}"; do
    node=${TRAIN_NODES[rank]}
    node_env=(NUM_GPUS="$GPUS_PER_NODE" NUM_MACHINES="$NUM_TRAIN_NODES" MACHINE_RANK="$rank"
        MAIN_PROCESS_IP="$MAIN_PROCESS_IP" MAIN_PROCESS_PORT="$MAIN_PROCESS_PORT" JUDGE_URL="$JUDGE_URLS"
        JUDGE_NAME=judge LOG_DIR="$LOG_DIR/$node")
    if [[ $DRY_RUN == 1 ]]; then
        # The node's own dry run: its batch check and the commands it would run.
        echo "[$node] rank $rank:" >&2
        if ! env "${node_env[@]}" DRY_RUN=1 bash scripts/launch_trust_grpo.sh -- "${EXTRA_ARGS[@]}" 2>&1 |
            sed "s/^/[$node] /" >&2; then
            die "training node $node (rank $rank) would not start: see above."
        fi
    else
        on_node "$node" "$LOG_DIR/train_$node.log" env "${node_env[@]}" scripts/launch_trust_grpo.sh -- "${EXTRA_ARGS[@]}"
    fi
done
[[ $DRY_RUN == 1 ]] && exit 0

# Training ends when every training node's task ends; the judge servers are stopped then (trap).
status=0
for pid in "${PIDS[@]:NUM_JUDGE_NODES}"; do
    wait "$pid" || status=$?
done
exit "$status"
