"""The judge reads the same prompt at Trust-GRPO time as in its training rows: the bare question (options included),
not the policy's answer-format instruction."""

import copy

from trl.data_utils import prepare_multimodal_messages

from sophia_trl.judges import build_judge_messages, format_judge_sft_example, judge_inputs
from sophia_trl.prompts import build_prompt, format_question

PROBLEM = "How many circles are in the image?"
OPTIONS = ["A. 2", "B. 3", "C. 4"]
RESPONSE = "<think>I count three round shapes.</think><answer>B</answer>"


def test_the_same_item_renders_the_identical_judge_prompt_on_both_paths(tiny_judge_dir):
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_judge_dir)
    image = Image.new("RGB", (56, 56), "white")
    # Stage 1: a judge-data row (Thinking-156k, our labelled data) holds the bare question.
    judge_row = {"question": format_question(PROBLEM, OPTIONS), "response": RESPONSE, "image": image, "score": 0.8}
    sft = format_judge_sft_example(judge_row)
    stage1 = prepare_multimodal_messages(copy.deepcopy(sft["prompt"]), sft["images"])  # as TRL's SFTTrainer does
    # Trust-GRPO: the policy's row, prompt and completion, as TRL hands them to the trainer's reward step.
    policy_row = {"prompt": build_prompt(PROBLEM, "multiple choice", options=OPTIONS), "image": image}
    completion = [{"role": "assistant", "content": RESPONSE}]
    question, response, judged_image = judge_inputs(policy_row, policy_row["prompt"], completion)
    assert question == "How many circles are in the image?\nOptions:\nA. 2\nB. 3\nC. 4"
    assert (response, judged_image) == (RESPONSE, image)
    grpo = build_judge_messages(question, response, judged_image)

    def render(messages):
        return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    assert render(stage1) == render(grpo)
    assert "<think> </think>" not in render(grpo)  # the policy's instruction never reaches the judge


def test_the_trainer_sends_the_bare_question(tiny_vlm_dir, tmp_path):
    from sophia_trl.configs import TrustGRPOConfig
    from sophia_trl.grpo_trainer import TrustGRPOTrainer
    from sophia_trl.rewards import format_reward
    from sophia_trl.tiny.scenes import make_synthetic_dataset

    class RecordingJudge:
        questions: list[str] = []

        def score(self, questions, responses, images=None):
            self.questions.extend(questions)
            return [0.5] * len(responses)

    dataset = make_synthetic_dataset(8, seed=0)
    judge = RecordingJudge()
    args = TrustGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=4,
        report_to="none",
        save_strategy="no",
    )
    TrustGRPOTrainer(str(tiny_vlm_dir), format_reward, args=args, thinking_judge=judge, train_dataset=dataset).train()
    problems = {row["problem"] for row in dataset}
    assert len(judge.questions) == 4
    for question in judge.questions:
        assert question.split("\nOptions:\n")[0] in problems
        assert "<think>" not in question and "<answer>" not in question
