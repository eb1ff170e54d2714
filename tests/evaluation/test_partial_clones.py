"""A clone of a benchmark's Hub repository that holds some of its configurations or splits (MMMU with a few of its 30
subjects, without the `test` split) is evaluated on what it holds; a warning and the report name what is missing."""

import json
import logging

import datasets
import pytest
from evaluation_helpers import MMMU_FEATURES, square

from sophia_trl.evaluation import evaluate, mmmu
from sophia_trl.evaluation.generation import Generation


def write_mmmu_clone(root, present):
    """MMMU/MMMU as `huggingface-cli download` writes it, with only the `present` subject/split files: a README.md
    whose `configs:` list all 30 subjects with `dev`, `validation` and `test`, and one parquet file per part held."""
    card = ["---", "configs:"]
    for subject in mmmu.SUBJECTS:
        card += [f"- config_name: {subject}", "  data_files:"]
        card += [f"  - split: {split}\n    path: {subject}/{split}-*" for split in ("dev", "validation", "test")]
    (root).mkdir(parents=True)
    (root / "README.md").write_text("\n".join([*card, "---", "", "# MMMU", ""]))
    for subject, split in present:
        row = {"id": f"{split}_{subject}_1", "question": "<image 1> Which colour?", "options": "['red', 'blue']",
               "answer": "A", "question_type": "multiple-choice", "subfield": "Colours", "image_1": square("red"),
               **{f"image_{i}": None for i in range(2, 8)}}  # fmt: skip
        (root / subject).mkdir(exist_ok=True)
        path = root / subject / f"{split}-00000-of-00001.parquet"
        datasets.Dataset.from_list([row], features=MMMU_FEATURES).to_parquet(str(path))
    return root


class AnswerA:
    """A generator that answers A to everything."""

    def generate(self, prompts, progress=None):
        return [Generation("<think>red</think><answer>A</answer>", truncated=False) for _ in prompts]

    def settings(self):
        return {"model": "answer-a"}


PRESENT = [("Art", "dev"), ("Art", "validation"), ("Math", "validation"), ("Math", "test")]


def test_a_partial_mmmu_clone_is_evaluated_on_what_it_holds(tmp_path, caplog):
    clone = write_mmmu_clone(tmp_path / "MMMU", PRESENT)
    with caplog.at_level(logging.WARNING, logger="sophia_trl.evaluation.loading"):
        rows = mmmu.load(str(clone))
    assert sorted(rows["id"]) == ["dev_Art_1", "validation_Art_1", "validation_Math_1"]  # test is never read
    [warning] = [record.getMessage() for record in caplog.records]
    assert "lacks 28 of its 30 configurations (Accounting, Agriculture," in warning and "Art," not in warning
    assert "and the split(s) Math/dev; evaluating the 3 part(s) it holds" in warning
    assert "huggingface-cli download --repo-type dataset MMMU/MMMU --local-dir" in warning

    report = evaluate(["mmmu"], tmp_path / "report.json", generator=AnswerA(), data={"mmmu": str(clone)})
    result = json.loads((tmp_path / "report.json").read_text())["benchmarks"]["mmmu"]
    assert result["num_items"] == 3 and result["metrics"]["accuracy"] == 100.0
    assert result["coverage"]["subjects"] == ["Art", "Math"] and result["coverage"]["splits"] == ["dev", "validation"]
    assert (
        len(result["coverage"]["subjects_not_evaluated"]) == 28
        and "Accounting" in result["coverage"]["subjects_not_evaluated"]
    )
    assert report["benchmarks"]["mmmu"]["coverage"] == result["coverage"]


def test_a_clone_without_any_evaluated_part_says_what_to_download(tmp_path):
    clone = write_mmmu_clone(tmp_path / "MMMU", [("Art", "test")])
    with pytest.raises(ValueError, match="holds none of the data MMMU/MMMU is evaluated on") as info:
        mmmu.load(str(clone))
    assert "huggingface-cli download --repo-type dataset MMMU/MMMU" in str(info.value)


def test_a_single_configuration_clone_reads_its_default(tmp_path):
    # lmms-lab/MME's layout with its card: one configuration, read when the benchmark names none.
    from sophia_trl.evaluation import mme

    root = tmp_path / "MME"
    (root / "data").mkdir(parents=True)
    card = "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: test\n    path: data/test-*\n---\n"
    (root / "README.md").write_text(card)
    rows = {"question_id": ["a/1.png"], "image": [square("red")], "question": ["Red? Please answer yes or no."],
            "answer": ["Yes"], "category": ["color"]}  # fmt: skip
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(
        str(root / "data" / "test-0.parquet")
    )
    assert mme.load(str(root))["question_id"] == ["a/1.png"]
