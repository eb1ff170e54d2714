"""Local copies in lmms-eval's and VLMEvalKit's layouts load without renaming; an unknown layout says what it needs."""

import base64
import io

import datasets
import pytest
from evaluation_helpers import square

from sophia_trl.evaluation import chartqa, mmstar


def test_lmms_eval_chartqa_loads_and_scores(tmp_path):
    rows = {"question": ["How many?", "Which?"], "answer": ["25", "Brazil"], "type": ["human_test", "augmented_test"],
            "image": [square("red"), square("blue")]}  # fmt: skip
    features = datasets.Features(
        {**{k: datasets.Value("string") for k in rows if k != "image"}, "image": datasets.Image()}
    )
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(tmp_path / "chartqa")
    loaded = chartqa.load(str(tmp_path / "chartqa"))
    assert loaded[0]["query"] == "How many?" and loaded[0]["label"] == "25"
    prompt = chartqa.build_prompt(loaded[0])
    assert "How many?" in prompt.messages[-1]["content"]
    scored = [{**{f: loaded[i][f] for f in chartqa.FIELDS}, "response": f"<answer>{r}</answer>"}
              for i, r in enumerate(["26", "Chile"])]  # fmt: skip
    # 26 is 4 % off 25 (right, human split); Chile != Brazil (wrong, augmented split)
    assert chartqa.score(scored)["metrics"] == pytest.approx({"human": 100.0, "augmented": 0.0, "overall": 50.0})


def test_vlmevalkit_mmstar_tsv_reads_options_from_columns(tmp_path):
    buffer = io.BytesIO()
    square("green").save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    path = tmp_path / "MMStar.tsv"
    path.write_text(
        "index\tquestion\tA\tB\tC\tD\tanswer\tcategory\tl2-category\timage\n"
        f"0\tWhich value?\t-3\t3\t0\t6\tA\tmath\tnumeric\t{image}\n"
    )
    rows = mmstar.load(str(path))
    row = rows[0]
    assert row["l2_category"] == "numeric"
    assert mmstar.options_of(row) == ["-3", "3", "0", "6"]
    assert "A. -3" in mmstar.build_prompt(row).messages[-1]["content"]


def test_unknown_layout_names_the_columns_found_and_needed(tmp_path):
    path = tmp_path / "chartqa.jsonl"
    path.write_text('{"prompt": "q", "gold": "1", "image": null}\n')
    with pytest.raises(ValueError) as error:
        chartqa.load(str(path))
    message = str(error.value)
    assert "found: ['gold', 'image', 'prompt']" in message
    assert "['human_or_machine', 'image', 'label', 'query']" in message  # our own layout
    assert "lmms-eval's layout: ['answer', 'question', 'type']" in message
