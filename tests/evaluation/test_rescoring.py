"""Re-scoring hand-written prediction files; every expected number is worked out by hand in the comments."""

import json
from pathlib import Path

import pytest
from evaluation_helpers import load_cli

from sophia_trl.evaluation import evaluate, mathverse

PREDICTIONS = Path(__file__).parent / "fixtures" / "predictions"
evaluate_cli = load_cli()


def rescore(name, tmp_path, judge=None):
    report = evaluate([name], tmp_path / "report.json", predictions=[str(PREDICTIONS / f"{name}.jsonl")], judge=judge)
    return report["benchmarks"][name]


def correct_flags(result):
    return [record["correct"] for record in result["records"]]


def test_mathvista(tmp_path):
    result = rescore("mathvista", tmp_path)
    # 1: "C" -> choices[2] = "5" right; 2: option text "blue" right; 3: integer, int(12.7) = 12 right (the official
    # code truncates); 4: round(1.54, 1) = 1.5 right; 5: no tag, after </think>: 0.3 != 0.25 wrong; 6: "twenty" names
    # no option: unparsable, wrong; 7: cut off inside <think>, last number 3 right.
    assert correct_flags(result) == [True, True, True, True, False, False, True]
    assert result["metrics"]["accuracy"] == pytest.approx(100 * 5 / 7)
    assert result["breakdown"]["question_type"] == pytest.approx({"multi_choice": 100 * 2 / 3, "free_form": 75.0})
    assert result["answers"]["answer_sources"] == {
        "answer_tag": 5,
        "after_think": 1,
        "full_response": 1,
        "empty": 0,
    }
    assert result["answers"]["fallback"] == 2
    assert result["answers"]["fallback_correct"] == 1  # item 7, read from cut-off reasoning
    assert result["answers"]["unparsable"] == 1
    assert result["scoring_mode"] == "rule"
    assert [r["prediction"] for r in result["records"]] == ["5", "blue", "12", "1.5", "0.3", None, "3"]


def test_mathverse_versions_and_average(tmp_path):
    result = rescore("mathverse", tmp_path)
    # problem 1 (choice B): TD "B" right, TL "(B) 40°" right, VI "C" wrong, VD "B" right, VO no answer (unparsable);
    # problem 2 (60°): TD "60" right (math-verify: 60 = 60°), TL "60°" right, VI "\frac{120}{2}" right, VD "30" wrong,
    # VO "0.5" wrong; problem 3 (5, Text Dominant only): "6" wrong.
    assert correct_flags(result) == [True, True, False, True, False, True, True, True, False, False, False]
    metrics = result["metrics"]
    assert metrics["Text Dominant"] == pytest.approx(100 * 2 / 3)
    assert metrics["Text Lite"] == pytest.approx(100.0)
    assert metrics["Vision Intensive"] == pytest.approx(50.0)
    assert metrics["Vision Dominant"] == pytest.approx(50.0)
    assert metrics["Vision Only"] == pytest.approx(0.0)
    # the mean over the five versions, which differs from the accuracy over the 11 items when versions are unbalanced
    assert metrics["average"] == pytest.approx((100 * 2 / 3 + 100 + 50 + 50 + 0) / 5)
    assert metrics["overall"] == pytest.approx(100 * 6 / 11)
    assert result["answers"]["unparsable"] == 1
    assert result["answers"]["fallback"] == 1


def test_mathverse_text_reference_needs_exact_match():
    row = {"sample_index": "1", "problem_version": "Text Lite", "question": "Which triangle?", "answer": "Isosceles",
           "question_type": "free-form"}  # fmt: skip
    rows = [{**row, "response": "<answer>isosceles</answer>"}, {**row, "response": "<answer>right</answer>"}]
    # math-verify cannot read the reference: case-insensitive exact match decides, without an error
    assert correct_flags(mathverse.score(rows)) == [True, False]


def test_mmmu_unparsable_answer_is_wrong_not_random(tmp_path):
    result = rescore("mmmu", tmp_path)
    # Art_1 "C" right; Art_2 "I cannot tell": no option letter, too short for the option-text search -> unparsable
    # (the reference code would pick a random letter); Math_1 long answer naming the option text "2x" -> B right;
    # Math_2 open 3.14159 -> 3.14 right; Math_3 open "... is dark blue" contains "blue" right; Physics_1 10 != 9.8.
    assert correct_flags(result) == [True, False, True, True, True, False]
    assert [r["prediction"] for r in result["records"][:3]] == ["C", None, "B"]
    assert result["answers"]["unparsable"] == 1
    assert result["metrics"] == pytest.approx(
        {"accuracy": 100 * 4 / 6, "accuracy_dev": 100.0, "accuracy_validation": 100 * 3 / 5}
    )
    assert result["breakdown"]["subject"] == pytest.approx({"Art": 50.0, "Math": 100.0, "Physics": 0.0})
    # the same file scored twice gives the same numbers (no random fallback)
    assert rescore("mmmu", tmp_path)["metrics"] == result["metrics"]


def test_mme_acc_plus_needs_both_answers_of_an_image(tmp_path):
    result = rescore("mme", tmp_path)
    # existence: image 1 both right ("Yes, it is." reads as yes), image 2 one of two right
    #   acc = 3/4 = 75, acc+ = 1/2 = 50, score 125
    # code_reasoning: image 3 "maybe" unparsable (wrong) and "No" right: acc = 50, acc+ = 0, score 50
    assert correct_flags(result) == [True, True, True, False, False, True]
    categories = result["breakdown"]["category"]
    assert categories["existence"] == pytest.approx({"accuracy": 75.0, "accuracy_plus": 50.0, "score": 125.0})
    assert categories["code_reasoning"] == pytest.approx({"accuracy": 50.0, "accuracy_plus": 0.0, "score": 50.0})
    assert result["metrics"] == pytest.approx({"perception": 125.0, "cognition": 50.0, "total": 175.0})
    assert result["answers"]["unparsable"] == 1
    assert "count" in result["missing_categories"]


def test_mmstar(tmp_path):
    result = rescore("mmstar", tmp_path)
    # "A" right; "bird" is option C right; "D" for B wrong; after </think> "The answer is (D)." right; empty tag wrong
    assert correct_flags(result) == [True, True, False, True, False]
    assert result["metrics"] == pytest.approx({"accuracy": 60.0, "coarse perception": 100 * 2 / 3, "math": 50.0})
    assert result["answers"]["unparsable"] == 1
    assert result["answers"]["fallback"] == 1


def test_chartqa_relaxed_accuracy(tmp_path):
    result = rescore("chartqa", tmp_path)
    # human: 26 vs 25 is 4 % off (right), 27 vs 25 is 8 % off (wrong), "yes" vs "Yes" (right, case ignored)
    # augmented: "50%" = 0.5 (right); 0.01 vs 0: a zero target falls back to exact match (wrong);
    #   no answer after </think>: the fallback's last line "Brazil is higher" != "Brazil" (wrong)
    assert correct_flags(result) == [True, False, True, True, False, False]
    assert result["metrics"] == pytest.approx({"human": 100 * 2 / 3, "augmented": 100 / 3, "overall": 50.0})
    assert [r["split"] for r in result["records"]] == ["human"] * 3 + ["augmented"] * 3


def test_mmbench_circular(tmp_path):
    result = rescore("mmbench", tmp_path)
    # question 1: 4 rotations right (one answered with the option's text "blue", one as "D. blue");
    # question 2: right in 3 of 4 rotations (answered "B" where "D" was right) -> wrong circularly;
    # question 3: 2 options, both rotations right.
    assert correct_flags(result) == [True, True, True, True, True, True, False, True, True, True]
    assert result["metrics"] == pytest.approx({"circular": 100 * 2 / 3, "single_pass": 100.0})
    assert result["breakdown"]["category"] == pytest.approx({"attribute_recognition": 50.0, "ocr": 100.0})
    assert result["num_questions"] == 3
    assert result["incomplete_questions"] == 0


def test_mmbench_missing_rotation_is_reported(tmp_path):
    rows = [json.loads(line) for line in (PREDICTIONS / "mmbench.jsonl").read_text().splitlines()]
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(json.dumps(row) + "\n" for row in rows if row["index"] != 3000001))
    report = evaluate(["mmbench"], tmp_path / "report.json", predictions=[str(partial)])
    assert report["benchmarks"]["mmbench"]["incomplete_questions"] == 1


def test_cli_rescoring_writes_report_and_table(tmp_path, capsys):
    names = ["mathvista", "mme"]
    evaluate_cli.main(
        [
            "--benchmark",
            ",".join(names),
            "--predictions",
            *(str(PREDICTIONS / f"{name}.jsonl") for name in names),
            "--output",
            str(tmp_path / "out.json"),
        ]
    )
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["generation"] is None
    assert report["benchmarks"]["mme"]["metrics"]["total"] == pytest.approx(175.0)
    table = capsys.readouterr().out
    assert "| mathvista | accuracy | 71.43 | rule | 7 | 2 | 1 | 1 |" in table
    assert "| mme | perception | 125.00 | rule | 6 | 0 | 0 | 1 |" in table


def test_prediction_file_errors_name_file_and_field(tmp_path):
    missing = tmp_path / "missing_field.jsonl"
    missing.write_text(json.dumps({"query": "q", "label": ["1"], "response": "<answer>1</answer>"}) + "\n")
    with pytest.raises(ValueError, match=r"missing_field\.jsonl, row 1 lacks the column\(s\) \['human_or_machine'\]"):
        evaluate(["chartqa"], tmp_path / "r.json", predictions=[str(missing)])

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"query": "q", "label": ["1"], "human_or_machine": 0, "response": ""}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl: line 2 is not valid JSON"):
        evaluate(["chartqa"], tmp_path / "r.json", predictions=[str(broken)])

    with pytest.raises(ValueError, match="one file per benchmark"):
        evaluate(["chartqa", "mme"], tmp_path / "r.json", predictions=[str(broken)])
    with pytest.raises(ValueError, match="Unknown benchmark 'mmvet'"):
        evaluate(["mmvet"], tmp_path / "r.json", predictions=[str(broken)])
