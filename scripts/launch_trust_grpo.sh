#!/usr/bin/env bash
# Start the thinking judge server (and, in vLLM server mode, the generation server), wait until they answer, then run
# Trust-GRPO on the remaining GPUs. Servers started here are stopped when the script exits.
#
#   scripts/launch_trust_grpo.sh [-- EXTRA_ARGS for recipes/grpo.py]
#
# Settings (environment variables):
#   CONFIG             recipe YAML (default recipes/Qwen2.5-VL-7B-Instruct/grpo/config_trust_grpo.yaml)
#   OVERRIDES          YAML of keys to change, e.g. an ablation; merged into CONFIG by scripts/merge_configs.py
#   ACCELERATE_CONFIG  accelerate config (default accelerate_configs/zero3.yaml); "none" runs one plain process
#   NUM_GPUS           GPUs on this node (default: counted with nvidia-smi); 0 runs everything on the CPU
#   JUDGE_URL          an already running judge server (http://HOST:PORT/v1): no judge server is started
#   JUDGE_MODEL        judge checkpoint to serve (default bunny127/SophiaVL-R1-Thinking-Reward-Model-3B)
#   JUDGE_SERVER       vllm (default) or transformers: how scripts/serve_judge.sh serves JUDGE_MODEL
#   JUDGE_GPUS         GPUs of the judge server (default: the last GPU), e.g. 6,7 for tensor parallelism
#   JUDGE_PORT         port of the judge server (default 8001)
#   JUDGE_NAME         model name the judge requests carry (default: judge for vLLM, JUDGE_MODEL for transformers,
#                      the recipe's judge_model_name_or_path for JUDGE_URL)
#   JUDGE_PROMPT_TEMPLATE  the prompt the judge was trained with (judge_prompt_template of recipes/grpo.py and of the
#                      server check). Default: --judge_prompt_template after --, else JUDGE_MODEL's judge_prompt.yaml
#                      (a judge trained by recipes/thinking_reward.py carries one), sophiavl-r1 for the released
#                      judge, else the recipe's judge_prompt_template. A judge folder without the file stops here.
#   VLLM_MODE          colocate (default: vLLM generates on the training GPUs) or server (`trl vllm-serve`)
#   GEN_GPUS           GPUs of the generation server in server mode (default: the GPU before the judge's)
#   GEN_PORT           port of the generation server (default 8000)
#   TRAIN_GPUS         GPUs of the trainer (default: all the others)
#   WAIT_TIMEOUT       seconds to wait for each server (default 900)
#   LOG_DIR            where server logs go (default outputs/logs)
#   NUM_MACHINES       training nodes of a multi-node run (default 1); this node is MACHINE_RANK (0 ... NUM_MACHINES-1)
#                      and MAIN_PROCESS_IP:MAIN_PROCESS_PORT (default 29500) is rank 0's address. A multi-node run
#                      needs JUDGE_URL; scripts/launch_trust_grpo_slurm.sh sets all of these on each node.
#   DRY_RUN=1          print the commands and the GPU split, start nothing
#
# Examples:
#   # 9 GPUs: the paper's batch on GPUs 0-7 (ZeRO-3, vLLM colocated), the judge on GPU 8
#   scripts/launch_trust_grpo.sh
#   # one 8-GPU node: judge on GPU 7, trainer on GPUs 0-6 (14 prompts per step instead of 16); vLLM's tensor-parallel
#   # size 2 does not divide 7 processes, so the script uses 1 (TRAIN_GPUS=0,1,2,3,4,5 keeps 2, 12 prompts per step)
#   NUM_GPUS=8 scripts/launch_trust_grpo.sh
#   # an ablation of the paper's Table 3, the judge already served on another machine
#   OVERRIDES=recipes/Qwen2.5-VL-7B-Instruct/grpo/ablations/no_trust.yaml JUDGE_URL=http://judge-host:8001/v1 \
#       scripts/launch_trust_grpo.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python}
CONFIG=${CONFIG:-recipes/Qwen2.5-VL-7B-Instruct/grpo/config_trust_grpo.yaml}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-accelerate_configs/zero3.yaml}
RELEASED_JUDGE=bunny127/SophiaVL-R1-Thinking-Reward-Model-3B
JUDGE_MODEL=${JUDGE_MODEL:-$RELEASED_JUDGE}
JUDGE_SERVER=${JUDGE_SERVER:-vllm}
JUDGE_PORT=${JUDGE_PORT:-8001}
VLLM_MODE=${VLLM_MODE:-colocate}
GEN_PORT=${GEN_PORT:-8000}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-900}
LOG_DIR=${LOG_DIR:-outputs/logs}
DRY_RUN=${DRY_RUN:-0}
NUM_MACHINES=${NUM_MACHINES:-1}
MACHINE_RANK=${MACHINE_RANK:-0}
MAIN_PROCESS_PORT=${MAIN_PROCESS_PORT:-29500}
EXTRA_ARGS=()
if [[ $# -gt 0 ]]; then
    [[ $1 == "--" ]] && shift
    EXTRA_ARGS=("$@")
fi

die() {
    echo "error: $*" >&2
    exit 1
}

run() {  # print a command; run it unless DRY_RUN
    echo "+ $*" >&2
    [[ $DRY_RUN == 1 ]] || "$@"
}

# ---------------------------------------------------------------------------------------------------------------------
# The recipe: merge the overrides, read the settings that decide which servers to start
# ---------------------------------------------------------------------------------------------------------------------
[[ -f $CONFIG ]] || die "CONFIG=$CONFIG does not exist."
if [[ -n ${OVERRIDES:-} ]]; then
    [[ -f $OVERRIDES ]] || die "OVERRIDES=$OVERRIDES does not exist."
    MERGED="$LOG_DIR/$(basename "${OVERRIDES%.yaml}")_merged.yaml"
    mkdir -p "$LOG_DIR"
    "$PYTHON" scripts/merge_configs.py "$CONFIG" "$OVERRIDES" -o "$MERGED"
    CONFIG=$MERGED
fi

setting() {  # setting KEY DEFAULT: the value in the recipe, or in EXTRA_ARGS (--KEY VALUE / --KEY=VALUE), which win
    local key=$1 default=$2 value i
    value=$("$PYTHON" -c 'import sys, yaml; v = (yaml.safe_load(open(sys.argv[1])) or {}).get(sys.argv[2]); print("" if v is None else v)' "$CONFIG" "$key")
    for ((i = 0; i < ${#EXTRA_ARGS[@]}; i++)); do
        case ${EXTRA_ARGS[i]} in
            --$key=*) value=${EXTRA_ARGS[i]#--$key=} ;;
            --$key) value=${EXTRA_ARGS[i + 1]:-} ;;
        esac
    done
    echo "${value:-$default}"
}
JUDGE_BACKEND=$(setting judge_backend transformers)
USE_VLLM=$(setting use_vllm False)
MODEL=$(setting model_name_or_path "")

# ---------------------------------------------------------------------------------------------------------------------
# The GPU split: judge on the last GPU(s), the generation server before it (server mode), the trainer on the rest
# ---------------------------------------------------------------------------------------------------------------------
if [[ -z ${NUM_GPUS:-} ]]; then
    command -v nvidia-smi >/dev/null || die "nvidia-smi not found: set NUM_GPUS (0 runs on the CPU)."
    NUM_GPUS=$(nvidia-smi -L | wc -l)
fi
START_JUDGE=0
if [[ $JUDGE_BACKEND == openai && -z ${JUDGE_URL:-} ]]; then
    ((NUM_MACHINES == 1)) || die "NUM_MACHINES=$NUM_MACHINES: a multi-node run needs the judge served apart," \
        "JUDGE_URL=http://HOST:PORT/v1 (scripts/launch_trust_grpo_slurm.sh serves it on judge nodes)."
    START_JUDGE=1
fi
if ((NUM_MACHINES > 1)); then
    [[ -n ${MAIN_PROCESS_IP:-} ]] || die "NUM_MACHINES=$NUM_MACHINES needs MAIN_PROCESS_IP, the address of rank 0."
    ((MACHINE_RANK >= 0 && MACHINE_RANK < NUM_MACHINES)) ||
        die "MACHINE_RANK=$MACHINE_RANK is not in 0 ... $((NUM_MACHINES - 1))."
fi
START_GEN=0
if [[ $USE_VLLM == True || $USE_VLLM == true ]] && [[ $VLLM_MODE == server ]]; then
    START_GEN=1
fi
[[ $VLLM_MODE == colocate || $VLLM_MODE == server ]] || die "VLLM_MODE must be colocate or server, got $VLLM_MODE."

# A served judge's prompt cannot be read from the server: the one of the folder served here, the released judge's
# named template, or the run's own setting; decided before any server starts, given to the recipe and to the check.
if [[ $JUDGE_BACKEND == openai ]]; then
    choose="recipes/judge_prompts/sophia_trl.yaml for a judge trained by this project, sophiavl-r1 for the released"
    choose+=" judge, or a template file (docs/thinking_reward_model.md)"
    if [[ -z ${JUDGE_PROMPT_TEMPLATE:-} ]]; then
        if ((START_JUDGE)) && [[ " ${EXTRA_ARGS[*]} " != *" --judge_prompt_template"* ]]; then
            if [[ -f $JUDGE_MODEL/judge_prompt.yaml ]]; then
                JUDGE_PROMPT_TEMPLATE=$JUDGE_MODEL/judge_prompt.yaml
            elif [[ $JUDGE_MODEL == "$RELEASED_JUDGE" ]]; then
                JUDGE_PROMPT_TEMPLATE=sophiavl-r1
            elif [[ -d $JUDGE_MODEL ]]; then
                die "JUDGE_MODEL=$JUDGE_MODEL has no judge_prompt.yaml, so the prompt it was trained with is not known." \
                    "Set JUDGE_PROMPT_TEMPLATE: $choose."
            fi
        fi
        JUDGE_PROMPT_TEMPLATE=${JUDGE_PROMPT_TEMPLATE:-$(setting judge_prompt_template "")}
    fi
    [[ -n $JUDGE_PROMPT_TEMPLATE ]] || die "the judge's prompt is not known: set JUDGE_PROMPT_TEMPLATE (or" \
        "judge_prompt_template in $CONFIG): $choose."
fi

if ((NUM_GPUS > 0)); then
    free=$(seq -s, 0 $((NUM_GPUS - 1)))
    take_last() {  # take_last N: the last N GPUs of $free
        echo "$free" | tr , '\n' | tail -n "$1" | paste -sd, -
    }
    drop() {  # drop LIST: $free without the GPUs of LIST
        echo "$free" | tr , '\n' | grep -vxF -f <(echo "$1" | tr , '\n') | paste -sd, - || true
    }
    if ((START_JUDGE)); then
        JUDGE_GPUS=${JUDGE_GPUS:-$(take_last 1)}
        free=$(drop "$JUDGE_GPUS")
    fi
    if ((START_GEN)); then
        GEN_GPUS=${GEN_GPUS:-$(take_last 1)}
        free=$(drop "$GEN_GPUS")
    fi
    TRAIN_GPUS=${TRAIN_GPUS:-$free}
    if [[ -z $TRAIN_GPUS ]]; then
        servers="${JUDGE_GPUS:+the judge server on GPU $JUDGE_GPUS}${GEN_GPUS:+ and the generation server on GPU $GEN_GPUS}"
        die "No GPU left for training (NUM_GPUS=$NUM_GPUS, $servers). Serve the judge elsewhere" \
            "(JUDGE_URL=http://HOST:PORT/v1)${GEN_GPUS:+, use VLLM_MODE=colocate}, or on one GPU use" \
            "recipes/Qwen2.5-VL-3B-Instruct/grpo/config_lora.yaml (judge in-process) as its header says; or set TRAIN_GPUS."
    fi
    NUM_TRAIN=$(echo "$TRAIN_GPUS" | tr , '\n' | wc -l)
    echo "GPU split: trainer ${TRAIN_GPUS} ($NUM_TRAIN processes)${JUDGE_GPUS:+, judge $JUDGE_GPUS}${GEN_GPUS:+, generation $GEN_GPUS}" >&2
else
    NUM_TRAIN=1
    echo "No GPU: one training process on the CPU." >&2
fi

# Colocated vLLM splits the training processes into tensor-parallel groups: TRL refuses a size that does not divide
# them. The recipe's size is kept when it divides; otherwise the largest size below it that does (1 always does).
TRAIN_ARGS=()
TP=$(setting vllm_tensor_parallel_size 1)
if [[ $USE_VLLM == True || $USE_VLLM == true ]] && [[ $VLLM_MODE == colocate ]] && ((NUM_GPUS > 0)); then
    if ((NUM_TRAIN % TP != 0)); then
        if [[ " ${EXTRA_ARGS[*]} " == *" --vllm_tensor_parallel_size"* ]]; then
            die "vllm_tensor_parallel_size=$TP does not divide the $NUM_TRAIN training processes, which TRL refuses" \
                "in colocate mode: pass a divisor of $NUM_TRAIN, or change TRAIN_GPUS."
        fi
        tp=$TP
        while ((NUM_TRAIN % tp != 0)); do tp=$((tp - 1)); done
        echo "vLLM (colocate): vllm_tensor_parallel_size=$TP does not divide $NUM_TRAIN training processes;" \
            "using $tp (set TRAIN_GPUS to a multiple of $TP GPUs to keep $TP)." >&2
        TP=$tp
        TRAIN_ARGS+=(--vllm_tensor_parallel_size "$TP")
    fi
    echo "vLLM (colocate): $((NUM_TRAIN / TP)) engines of tensor-parallel size $TP on the training GPUs." >&2
fi

# Every training node runs NUM_TRAIN processes: the batch counts all of them.
NUM_PROCESSES=$((NUM_TRAIN * NUM_MACHINES))
if ((NUM_MACHINES > 1)); then
    echo "Nodes: $NUM_MACHINES x $NUM_TRAIN processes = $NUM_PROCESSES processes; this node is rank $MACHINE_RANK." >&2
fi
PER_DEVICE=$(setting per_device_train_batch_size 8)
GRAD_ACC=$(setting gradient_accumulation_steps 1)
NUM_GEN=$(setting num_generations 8)
STEPS_PER_GEN=$(setting steps_per_generation "$GRAD_ACC")
COMPLETIONS=$((PER_DEVICE * NUM_PROCESSES * GRAD_ACC))
echo "Batch: $PER_DEVICE x $NUM_PROCESSES processes x $GRAD_ACC accumulation = $COMPLETIONS completions per step" \
    "= $((COMPLETIONS / NUM_GEN)) prompts x $NUM_GEN generations." >&2
# TRL generates per_device x processes x steps_per_generation completions at once (gradient_accumulation_steps unless
# set): whole groups of num_generations, or it stops at start-up.
GENERATION_BATCH=$((PER_DEVICE * NUM_PROCESSES * STEPS_PER_GEN))
if ((GENERATION_BATCH % NUM_GEN != 0)); then
    n=$STEPS_PER_GEN
    while (((PER_DEVICE * NUM_PROCESSES * n) % NUM_GEN != 0)); do n=$((n + 1)); done
    key=$([[ $STEPS_PER_GEN == "$GRAD_ACC" ]] && echo gradient_accumulation_steps || echo steps_per_generation)
    die "$GENERATION_BATCH completions per generation ($PER_DEVICE x $NUM_PROCESSES processes x $STEPS_PER_GEN) is not a" \
        "multiple of num_generations=$NUM_GEN: pass -- --$key $n, or change per_device_train_batch_size or TRAIN_GPUS."
fi
((GENERATION_BATCH == COMPLETIONS)) ||
    echo "Generation: $GENERATION_BATCH completions at once (steps_per_generation=$STEPS_PER_GEN)." >&2

# ---------------------------------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------------------------------
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
mkdir -p "$LOG_DIR"

with_gpus() {  # with_gpus LIST CMD...: run CMD on the GPUs of LIST (no restriction on the CPU)
    local gpus=$1
    shift
    if ((NUM_GPUS > 0)); then
        CUDA_VISIBLE_DEVICES=$gpus "$@"
    else
        "$@"
    fi
}

if [[ $JUDGE_BACKEND == openai ]]; then
    if ((START_JUDGE)); then
        JUDGE_URL=http://127.0.0.1:$JUDGE_PORT/v1
        echo "+ scripts/serve_judge.sh $JUDGE_SERVER $JUDGE_MODEL $JUDGE_PORT > $LOG_DIR/judge.log (GPUs ${JUDGE_GPUS:-none})" >&2
        if [[ $DRY_RUN != 1 ]]; then
            with_gpus "${JUDGE_GPUS:-}" scripts/serve_judge.sh "$JUDGE_SERVER" "$JUDGE_MODEL" "$JUDGE_PORT" \
                >"$LOG_DIR/judge.log" 2>&1 &
            PIDS+=($!)
        fi
    fi
    # Requests carry the served model name: "judge" for vLLM (scripts/serve_judge.sh names it so), the model itself
    # for transformers serve, the recipe's judge_model_name_or_path for an external server (JUDGE_NAME overrides).
    if ((START_JUDGE)); then
        default_name=$([[ $JUDGE_SERVER == vllm ]] && echo judge || echo "$JUDGE_MODEL")
    else
        default_name=$(setting judge_model_name_or_path judge)
    fi
    JUDGE_NAME=${JUDGE_NAME:-$default_name}
    TRAIN_ARGS+=(--judge_base_url "$JUDGE_URL" --judge_model_name_or_path "$JUDGE_NAME")
    TRAIN_ARGS+=(--judge_prompt_template "$JUDGE_PROMPT_TEMPLATE")
fi
if ((START_GEN)); then
    [[ -n $MODEL ]] || die "model_name_or_path is not set in $CONFIG."
    NUM_GEN_GPUS=$(echo "${GEN_GPUS:-0}" | tr , '\n' | wc -l)
    echo "+ trl vllm-serve --model $MODEL --data_parallel_size $NUM_GEN_GPUS --port $GEN_PORT > $LOG_DIR/generation.log (GPUs ${GEN_GPUS:-none})" >&2
    if [[ $DRY_RUN != 1 ]]; then
        with_gpus "${GEN_GPUS:-}" trl vllm-serve --model "$MODEL" --data_parallel_size "$NUM_GEN_GPUS" \
            --port "$GEN_PORT" >"$LOG_DIR/generation.log" 2>&1 &
        PIDS+=($!)
    fi
    TRAIN_ARGS+=(--vllm_mode server --vllm_server_host 127.0.0.1 --vllm_server_port "$GEN_PORT"
        --vllm_server_timeout "$WAIT_TIMEOUT")
fi

# The judge must answer (and score a probe) before training starts; TRL waits for the generation server itself.
if [[ $JUDGE_BACKEND == openai ]]; then
    check=("$PYTHON" scripts/check_judge_server.py --base_url "$JUDGE_URL" --model "$JUDGE_NAME" --timeout "$WAIT_TIMEOUT"
        --judge_prompt_template "$JUDGE_PROMPT_TEMPLATE")
    ((START_JUDGE)) && [[ $DRY_RUN != 1 ]] && check+=(--server_pid "${PIDS[0]}")
    if ! run "${check[@]}"; then
        ((START_JUDGE)) && echo "The judge server's log: $LOG_DIR/judge.log" >&2 && tail -n 20 "$LOG_DIR/judge.log" >&2
        die "the judge server is not ready; training was not started."
    fi
fi

# ---------------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------------
if [[ $ACCELERATE_CONFIG == none || $NUM_GPUS == 0 ]]; then
    launcher=("$PYTHON")
else
    launcher=(accelerate launch --config_file "$ACCELERATE_CONFIG" --num_processes "$NUM_PROCESSES")
    if ((NUM_MACHINES > 1)); then
        launcher+=(--num_machines "$NUM_MACHINES" --machine_rank "$MACHINE_RANK" --main_process_ip "$MAIN_PROCESS_IP"
            --main_process_port "$MAIN_PROCESS_PORT")
    fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # accelerate puts recipes/ on the path, not the repo root
echo "+ CUDA_VISIBLE_DEVICES=${TRAIN_GPUS:-} ${launcher[*]} recipes/grpo.py --config $CONFIG ${TRAIN_ARGS[*]} ${EXTRA_ARGS[*]}" >&2
if [[ $DRY_RUN != 1 ]]; then
    with_gpus "${TRAIN_GPUS:-}" "${launcher[@]}" recipes/grpo.py --config "$CONFIG" "${TRAIN_ARGS[@]}" "${EXTRA_ARGS[@]}"
fi
