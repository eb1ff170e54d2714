# Stand-in for verl/workers/reward/custom.py of the SophiaVL-R1 release, written for sophia-trl's tests.
#
# It has the code structure of the released file (the same functions in the same order, the same shape of
# get_process_reward and of the reward manager) and wording of its own: sophia_trl.release reads the real file the
# same way it reads this one. Nothing of it is imported by sophia_trl; the tests run its get_process_reward and
# its extractor chain against a loopback server to compare with what sophia_trl sends and reads.


import torch
from transformers import PreTrainedTokenizer
import re
import base64
from openai import OpenAI
import os
from io import BytesIO
import time
from ...protocol import DataProtoItem, DataProto, collate_fn
from ...utils.reward_score import math_compute_score, r1v_compute_score, choices_compute_score, ocr_compute_score, free_form_compute_score
import pickle
import math
import httpx
import numpy as np

openai_api_key = os.getenv("OPENAI_API_KEY")
openai_api_base = os.getenv("OPENAI_API_URL")
reward_model = os.getenv("REWARD_MODEL")
def encode_image(image_path):
    with open(image_path, "rb") as handle:
        return base64.b64encode(handle.read()).decode("utf-8")

def extract_after_think_number(text: str):
    """
    The number written after the closing think tag.
    """
    match = re.search(r'</think>\s*<answer>\s*([\d.]+)\s*</answer>', text)
    if match:
        number_str = match.group(1)
        return int(number_str) if number_str.isdigit() else float(number_str)

    match = re.search(r'</think>\s*([\d.]+)', text)
    if match:
        number_str = match.group(1)
        return int(number_str) if number_str.isdigit() else float(number_str)

    return None

def extract_zero_wrong_steps(text: str):
    """
    A bold count of wrong steps.
    """
    match = re.search(r'\*\*(\d+)\s+wrong steps\*\*', text)
    if match:
        return int(match.group(1))
    return None


def extract_box_score(text: str):
    """
    A score in a box command.
    """
    match = re.search(r'\\box(?:es)?\{([01](?:\.\d)?)\}', text)
    if match:
        return float(match.group(1))
    return None

def extract_total_wrong_steps(text: str):
    """
    The total count of wrong steps.
    """
    match = re.search(r'Total Wrong Steps\*\*:\s*(\d+)', text)
    if match:
        return int(match.group(1))
    return None

def extract_xml_answer(text: str):
    """
    A score in answer tags.
    """
    match = re.search(r'<answer>\s*([01](?:\.\d)?)\s*</answer>', text)
    if match:
        return float(match.group(1))
    return None

def extract_plain_number(text: str):
    """
    The first standalone score anywhere.
    """
    match = re.search(r'\b([01](?:\.\d)?)\b', text)
    if match:
        return float(match.group(1))
    return None


def extract_wrong_steps(text: str):
    """
    Any bold wrong-steps count.
    """
    match = re.search(r'\*\*.*?\bWrong Steps\*\*:\s*(\d+)', text)
    if match:
        return int(match.group(1))
    return None

def extract_score(text: str):
    """
    Tries each reader in turn.
    """
    for extractor in [extract_box_score, extract_xml_answer,extract_plain_number, extract_after_think_number, extract_total_wrong_steps, extract_zero_wrong_steps, extract_wrong_steps]:
        score = extractor(text)
        if score is not None:
            if score>1:
                score = 1
            elif score<0:
                score=0
            return score
    return 0  # nothing found

# An older judge call, kept as comments
# def get_process_reward(prompt_str, reasoning_str, image):
#     prompt = f"""Grade this. {{0, 1}}
#     Question: {prompt_str}
#     Reasoning process: {reasoning_str}
#     """
#     client = OpenAI(api_key=openai_api_key, base_url=openai_api_base)
#     return extract_score(client.chat.completions.create(model=reward_model, messages=[]).choices[0].message.content)
 
def get_process_reward(prompt_str, reasoning_str, image):
    if image is not None and "<image>" not in prompt_str:
        prompt_str = f"<image> {prompt_str}"

    prompt = f"""Stand-in grader text. Read a question with its picture and a worked answer, then rate how well it reasons on a scale from 0 to 1.### Points to weigh:\n- **Steps**: does each follow?\n- **Facts**: are they right?\nPick one value from **{{0, 0.1, ..., 1.0}}**:\n - **0**: worthless\n- **1**: flawless\nReply with the value only.
    Item: {prompt_str}
    Worked answer: {reasoning_str}
    Reply as: <answer>value</answer>
    """

    messages = [
        {"role": "system", "content": "You are a stand-in grader."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
            ],
        },
    ]

    if image is not None:
        messages[1]["content"].append({
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{image}"},
        })

    url = openai_api_base 
    headers = {
        "Content-Type": "application/json"
    }
    payload = {
        "model": reward_model,  
        "messages": messages,
        "temperature": 0.0,
    }

    attempt = 0
    max_retry = 3
    while attempt < max_retry:
        try:
            response = httpx.post(url, headers=headers, json=payload, timeout=60)
            response.raise_for_status()
            result = response.json()["choices"][0]["message"]["content"]
            return extract_score(result)
        except Exception as e:
            print(f"[Try {attempt+1}] stand-in judge call failed: {e}, prompt: {prompt_str}")
            attempt += 1
            time.sleep(attempt)
    return 0


def pil_to_base64(pil_img, format='PNG'):
    buffer = BytesIO()
    pil_img.save(buffer, format=format)
    return base64.b64encode(buffer.getvalue()).decode('utf-8')

class CustomRewardManager:
    def __init__(self, tokenizer: PreTrainedTokenizer, num_examine: int, compute_score: str, T = 500):
        self.tokenizer = tokenizer
        self.num_examine = num_examine
        self.T = T
        if compute_score == "math":
            self.compute_score = math_compute_score
        elif compute_score == "choice":
            self.compute_score = choices_compute_score
        else:
            raise NotImplementedError()

    def __call__(self, data,mm_data, steps = 100000, n = -1):
        if n>0:
            process_score = [0]*n
            for index, sample in enumerate(data):
                prompt_ids = sample.batch["prompts"]
                prompt_length = prompt_ids.shape[-1]
                valid_prompt_length = sample.batch["attention_mask"][:prompt_length].sum()
                valid_prompt_ids = prompt_ids[-valid_prompt_length:]
                response_ids = sample.batch["responses"]
                valid_response_length = sample.batch["attention_mask"][prompt_length:].sum()
                valid_response_ids = response_ids[:valid_response_length]
                prompt_str = self.tokenizer.decode(valid_prompt_ids, skip_special_tokens=True)
                response_str = self.tokenizer.decode(valid_response_ids, skip_special_tokens=True)
                response_str = response_str.replace('$$', '').replace('$', '')
                is_mm = (sample.non_tensor_batch['data_type'] == 'image')
                image = pil_to_base64(mm_data["image"][0]) if is_mm else None
                process_score[index] = get_process_reward(prompt_str, response_str, image)
            return np.array(process_score)
        if isinstance(data, DataProtoItem):
            return None
        elif isinstance(data, DataProto):
            return None
        else:
            raise TypeError(f"unexpected data type {type(data)}")
