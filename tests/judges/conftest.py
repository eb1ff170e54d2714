import pytest


@pytest.fixture(scope="session")
def constant_judge_dir(tiny_judge_dir, tmp_path_factory):
    """The tiny judge SFT-trained (TRL SFTTrainer, completion-only loss) to answer `<answer>0.7</answer>` to any row.

    A judge whose output is known makes real generation checkable end to end; training takes a while on the CPU, so
    only slow tests use it.
    """
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from sophia_trl.judges import format_judge_sft_example

    rows = [
        {
            "question": f"How many shapes are in picture {i}?",
            "image": Image.new("RGB", (56, 56), (30 * i, 90, 200)) if i % 2 else None,
            "response": f"<think>I count {i} shapes.</think><answer>{i}</answer>",
            "score": 0.7,
        }
        for i in range(8)
    ]
    features = Features(
        {"question": Value("string"), "image": ImageFeature(), "response": Value("string"), "score": Value("float64")}
    )
    dataset = Dataset.from_list(rows, features=features)
    dataset = dataset.map(format_judge_sft_example, remove_columns=dataset.column_names)
    output_dir = tmp_path_factory.mktemp("constant-judge")
    args = SFTConfig(
        str(output_dir),
        max_steps=CONSTANT_JUDGE_STEPS,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        per_device_train_batch_size=4,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    processor = AutoProcessor.from_pretrained(tiny_judge_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_judge_dir)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    trainer.train()
    trainer.save_model(str(output_dir))
    processor.save_pretrained(str(output_dir))
    return output_dir


CONSTANT_JUDGE_STEPS = 80
