# Stand-in for verl/utils/dataset.py of the SophiaVL-R1 release, written for sophia-trl's tests: the same module-level
# templates and the same __getitem__ assembly, with wording of its own.

import os
from typing import Any, Dict, List, Optional

import torch
from datasets import load_dataset
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizer, ProcessorMixin


def collate_fn(features: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {key: [f[key] for f in features] for key in features[0]}


MULTIPLE_CHOICE_PROMPT = " Stand-in rule for choices that nothing uses."

TYPE_TEMPLATE = {
    "multiple choice": " Stand-in: write one option letter in <answer> </answer>.",
    "numerical": " Stand-in: write the number in <answer> </answer>.",
    "OCR": " Stand-in: copy the text in <answer> </answer>.",
    "free-form": " Stand-in: write a phrase in <answer> </answer>.",
    "text": " Stand-in: write a short text in <answer> </answer>."
}

QUESTION_TEMPLATE = (
        "{Question}\n"
        "Stand-in instruction: think it over aloud, "
        "check yourself, "
        "then reason inside <think> </think> and answer inside <answer> </answer>."
    )


class RLHFDataset(Dataset):
    def __init__(self, data_path: str, tokenizer: PreTrainedTokenizer, processor: Optional[ProcessorMixin], prompt_key="prompt", answer_key="answer", system_prompt=None):
        self.tokenizer = tokenizer
        self.processor = processor
        self.prompt_key = prompt_key
        self.answer_key = answer_key
        self.system_prompt = system_prompt
        self.dataset = load_dataset("json", data_files=data_path, split="train")

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        row_dict: dict = self.dataset[index]
        if "problem_type" in row_dict:
            if row_dict["problem_type"] == "multiple choice":
                row_dict[self.prompt_key] = row_dict[self.prompt_key]+ "; ".join(map(str, row_dict["options"])) 
        if "<image>" not in row_dict[self.prompt_key]:
            row_dict[self.prompt_key] = "<image>" + row_dict[self.prompt_key]

        row_dict[self.prompt_key]=QUESTION_TEMPLATE.format(Question=row_dict[self.prompt_key]) + TYPE_TEMPLATE[row_dict['problem_type']]

        messages = [{"role": "user", "content": row_dict[self.prompt_key]}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if "data_type" not in row_dict or row_dict["data_type"] == "image":
            prompt = prompt.replace("<image>", "<|vision_start|><|image_pad|><|vision_end|>")
        row_dict["prompt_text"] = prompt
        row_dict["ground_truth"] = row_dict.pop(self.answer_key)
        return row_dict
