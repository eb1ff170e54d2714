"""A release folder as downloaded (`json/` beside the image folders), or any dataset without the columns a recipe reads,
given as `dataset_name` stops the recipe right after the data is read, before any model loads, with an error that
names the missing columns and the converter command."""

import json

import pytest
from datasets import Dataset, DatasetDict
from PIL import Image
from recipe_helpers import RECIPES, import_recipe, load_yaml, parse_recipe

from sophia_trl.judges.carried_prompt import save_judge_prompt

GRPO_CONVERTER = "python data_prep/sophiavl_130k.py --input_dir {} --output_dir data/sophiavl-130k"
JUDGE_CONVERTER = "python data_prep/thinking_156k.py --input_dir {} --output_dir data/thinking-156k"


def write_130k_download(root):
    """The SophiaVL-R1-130k download's layout: raw rows under `json/`, their images in per-source folders."""
    (root / "json").mkdir(parents=True)
    (root / "Math" / "geo" / "images").mkdir(parents=True)
    Image.new("RGB", (56, 56), "red").save(root / "Math" / "geo" / "images" / "1.png")
    row = {"problem_id": 1, "problem": "How many?", "data_type": "image", "problem_type": "numerical", "options": [],
           "process": "...", "solution": "<answer>1</answer>", "path": "./Math/geo/images/1.png",
           "data_source": "geo"}  # fmt: skip
    (root / "json" / "math.json").write_text(json.dumps([row]))
    return root


def image_folder_dataset(root):
    """What `load_dataset` makes of an image folder: images and labels, no prompt or judge columns."""
    image = Image.new("RGB", (8, 8), "red")
    DatasetDict({"train": Dataset.from_dict({"image": [image], "label": [0]})}).save_to_disk(root)
    return root


@pytest.fixture
def recipe_without_models(tmp_path, monkeypatch):
    """Parses a tiny recipe with `dataset_name` set, from a folder where its model paths exist (empty), and makes
    every model, processor or judge load in the recipe fail the test."""
    monkeypatch.chdir(tmp_path)
    for folder in ("outputs/demo/policy", "outputs/demo/judge", "outputs/demo/judge-base"):
        (tmp_path / folder).mkdir(parents=True)
    save_judge_prompt(None, tmp_path / "outputs/demo/judge")  # a judge this project trained carries its prompt

    def no_loading(*args, **kwargs):
        raise AssertionError("a model, processor or judge was loaded before the data was checked")

    def prepare(script, yaml_name, dataset_name):
        module = import_recipe(script)
        for name in ("load_thinking_judge", "get_model", "load_processor", "AutoModelForImageTextToText"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, no_loading)
        config = {**load_yaml(RECIPES / "tiny" / yaml_name), "dataset_name": str(dataset_name)}
        return module, parse_recipe(script, config, tmp_path, "--output_dir", str(tmp_path / "out"))

    return prepare


@pytest.mark.parametrize(
    ("script", "yaml_name", "converter"),
    [
        ("grpo", "trust_grpo.yaml", GRPO_CONVERTER),
        ("thinking_reward", "thinking_reward_scalar.yaml", JUDGE_CONVERTER),
        ("thinking_reward", "thinking_reward_generative.yaml", JUDGE_CONVERTER),
    ],
)
def test_release_download_stops_before_any_model_naming_the_converter(
    script, yaml_name, converter, recipe_without_models, tmp_path
):
    release = write_130k_download(tmp_path / "SophiaVL-R1-130k")
    module, parsed = recipe_without_models(script, yaml_name, release)
    with pytest.raises(ValueError, match="dataset release as downloaded") as info:
        module.main(*parsed)
    assert converter.format(release) in str(info.value)


@pytest.mark.parametrize(
    ("script", "yaml_name", "missing", "converter"),
    [
        ("grpo", "trust_grpo.yaml", "['prompt', 'solution']", GRPO_CONVERTER),
        ("thinking_reward", "thinking_reward_scalar.yaml", "['question', 'response', 'score']", JUDGE_CONVERTER),
    ],
)
def test_data_without_the_recipe_columns_stops_before_any_model(
    script, yaml_name, missing, converter, recipe_without_models, tmp_path
):
    data = image_folder_dataset(tmp_path / "images")
    module, parsed = recipe_without_models(script, yaml_name, data)
    with pytest.raises(ValueError, match="lacks the column") as info:
        module.main(*parsed)
    message = str(info.value)
    assert missing in message and "'image', 'label'" in message and converter.format(data) in message


def test_a_folder_of_data_files_under_json_is_not_taken_for_a_release(tmp_path):
    from sophia_trl.data import load_train_test_splits

    (tmp_path / "rows" / "json").mkdir(parents=True)
    row = {"prompt": [{"role": "user", "content": "How many?"}], "solution": "<answer>1</answer>"}
    (tmp_path / "rows" / "json" / "train.jsonl").write_text(json.dumps(row) + "\n")
    train, test = load_train_test_splits(str(tmp_path / "rows"), required_columns=("prompt", "solution"))
    assert train["solution"] == ["<answer>1</answer>"] and test is None
