#!/usr/bin/env bash
# Serve a trained thinking judge behind an OpenAI-compatible API (/v1/chat/completions), for OpenAIJudge and
# `recipes/grpo.py --judge_backend openai`.
#
#   scripts/serve_judge.sh vllm MODEL [PORT] [EXTRA_ARGS...]          # GPU: vLLM (pip install -e '.[vllm]')
#   scripts/serve_judge.sh transformers MODEL [PORT] [EXTRA_ARGS...]  # CPU or one GPU: transformers serve
#   scripts/serve_judge.sh wait URL [TIMEOUT_SECONDS]                 # poll URL/health until the server answers
#
# MODEL is a judge trained with `recipes/thinking_reward.py --judge_type generative` (a local folder or a Hub id);
# PORT defaults to 8001. The model name that requests must carry: "judge" with vLLM (--served-model-name judge);
# MODEL itself, exactly as given here, with transformers serve (it rejects other names with HTTP 400). So:
#
#   --judge_backend openai --judge_base_url http://HOST:PORT/v1 --judge_model_name_or_path judge   # vllm
#   --judge_backend openai --judge_base_url http://HOST:PORT/v1 --judge_model_name_or_path MODEL   # transformers
#
# plus the prompt MODEL was trained with, which a server does not tell: --judge_prompt_template MODEL/judge_prompt.yaml
# for a judge trained by recipes/thinking_reward.py, sophiavl-r1 for bunny127/SophiaVL-R1-Thinking-Reward-Model-3B.
#
# Environment:
#   HOST                     listen address (default 127.0.0.1; 0.0.0.0 to accept other machines)
#   CUDA_VISIBLE_DEVICES     GPUs of the judge, e.g. the last GPU of the node while the policy trains on the others
#   GPU_MEMORY_UTILIZATION   vLLM's share of GPU memory (default 0.9: the judge has its GPU to itself)
#   MAX_MODEL_LEN            vLLM context length (default 8192: the judge prompt, a long response and one image)
#   MAX_IMAGES               vLLM's most images per request (default 1): the most images one dataset row has
#   DEVICE                   transformers serve device (default auto)
#
# vLLM runs with automatic prefix caching (--enable-prefix-caching): the requests of a group share the judge prompt's
# system text, image and question, so after the first the server reuses their key/value blocks (docs/scaling.md).
# Extra arguments go to `vllm serve`, e.g. --data-parallel-size 8 for one replica per GPU behind this port.
#
# Example, 8 GPUs: judge on GPU 7, Trust-GRPO on GPUs 0-6.
#   CUDA_VISIBLE_DEVICES=7 scripts/serve_judge.sh vllm outputs/judge-3b 8001 &
#   scripts/serve_judge.sh wait http://127.0.0.1:8001 600
#   CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6 accelerate launch --num_processes 7 recipes/grpo.py --config ... \
#       --judge_backend openai --judge_base_url http://127.0.0.1:8001/v1 --judge_model_name_or_path judge \
#       --judge_prompt_template outputs/judge-3b/judge_prompt.yaml
set -euo pipefail

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[[ $# -ge 2 ]] || usage
backend=$1
target=$2
shift 2
host=${HOST:-127.0.0.1}

# A local judge folder that is not there yet (a Hub id has one "/" and is left to the server).
if [[ $backend != wait && ! -e $target ]] && [[ $target == ./* || $target == /* || $target == outputs/* || $target == */*/* ]]; then
    echo "error: MODEL=$target does not exist. Train a judge first (recipes/thinking_reward.py --config" \
        "recipes/Qwen2.5-VL-3B-Instruct/thinking_reward/config_generative.yaml writes" \
        "outputs/Qwen2.5-VL-3B-Instruct-Thinking-Reward; on the CPU, make demo writes outputs/demo/judge), or give a" \
        "Hub id such as bunny127/SophiaVL-R1-Thinking-Reward-Model-3B." >&2
    exit 1
fi

case "$backend" in
    vllm)
        port=${1:-8001}
        [[ $# -ge 1 ]] && shift
        command -v vllm >/dev/null || { echo "vllm is not installed: pip install -e '.[vllm]' (GPU machines)" >&2; exit 1; }
        exec vllm serve "$target" \
            --served-model-name judge \
            --host "$host" --port "$port" \
            --max-model-len "${MAX_MODEL_LEN:-8192}" \
            --gpu-memory-utilization "${GPU_MEMORY_UTILIZATION:-0.9}" \
            --limit-mm-per-prompt "{\"image\": ${MAX_IMAGES:-1}}" \
            --enable-prefix-caching \
            "$@"
        ;;
    transformers)
        port=${1:-8001}
        [[ $# -ge 1 ]] && shift
        command -v transformers >/dev/null || { echo "transformers CLI not found: pip install 'transformers[serving]'" >&2; exit 1; }
        # transformers serve lists models from the Hub cache; an empty cache folder keeps /v1/models answering.
        mkdir -p "${HF_HUB_CACHE:-${HF_HOME:-$HOME/.cache/huggingface}/hub}"
        exec transformers serve "$target" --host "$host" --port "$port" --device "${DEVICE:-auto}" "$@"
        ;;
    wait)
        timeout=${1:-300}
        deadline=$((SECONDS + timeout))
        until curl --silent --fail --max-time 5 "${target%/}/health" >/dev/null; do
            if ((SECONDS >= deadline)); then
                echo "The judge server at $target did not answer within ${timeout}s." >&2
                exit 1
            fi
            sleep 1
        done
        echo "The judge server at $target is up."
        ;;
    *)
        usage
        ;;
esac
