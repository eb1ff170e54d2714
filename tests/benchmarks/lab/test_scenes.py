"""The learning lab's multimodal check: the scene step checker and judges against hand-worked scores, the lookup
from (question, image) to the generated scene, and `--task scenes --quick` end to end."""

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.lab.experiment import (
    SCENES,
    SCENES_QUICK,
    LabConfig,
    comparisons_table,
    markdown_table,
    run_settings,
    summarise,
)
from benchmarks.lab.scenes import (
    SCENE_PROBLEM_TYPES,
    SceneIndex,
    SceneJudge,
    grade_scenes,
    make_scene_problems,
    read_scene_response,
    scene_dataset,
    scene_judge_score,
    scene_reasoning_score,
    sound_lines,
)
from sophia_trl.judges.messages import judge_inputs
from sophia_trl.tiny.responses import FLAWS, write_response
from sophia_trl.tiny.scenes import Shape, SyntheticProblem, render_scene

SHAPES = [
    Shape("circle", "red", 0, (1, 1, 12, 12)),
    Shape("square", "blue", 1, (19, 1, 30, 12)),
    Shape("triangle", "red", 4, (19, 19, 30, 30)),
]
# How many red shapes are there? Answer 2. The sound reasoning has 4 lines (3 shapes, the conclusion), the answer is
# a fifth step.
PROBLEM = SyntheticProblem(
    problem_type="numerical",
    kind="count_color",
    targets=("red",),
    problem="How many red shapes are there in the image?",
    options=[],
    answer="2",
    value=2,
    shapes=SHAPES,
    image=render_scene(SHAPES),
)
S1 = "Shape 1 is a red circle, so the count of red shapes is now 1."
S2 = "Shape 2 is a blue square, which I do not count."
S3 = "Shape 3 is a red triangle, so the count of red shapes is now 2."
END = "So there are 2 red shapes."


def response(*lines: str, answer: str = "2") -> str:
    return "<think>\n" + "\n".join(lines) + "\n</think>\n<answer>" + answer + "</answer>"


# response, reliable score worked out by hand: score_steps(right steps, slots + extra lines + 1 answer)
CASES = [
    ("sound", response(S1, S2, S3, END), 1.0),  # 5/5
    ("slip", response(S1.replace("now 1", "now 2"), S2, S3, END), 0.8),  # 4/5
    (
        "miscount carried to the answer",
        response(
            S1.replace("now 1", "now 2"), S2, S3.replace("now 2", "now 3"), "So there are 3 red shapes.", answer="3"
        ),
        0.2,  # only shape 2 is right: 1/5
    ),
    ("filler", response(S1, "Some people prefer squares to circles.", S2, S3, END), 0.8),  # 5/6 = 0.83
    ("repetition", response(S1, S1, S1, S2, S3, END), 0.7),  # 5/7 = 0.71
    ("wrong answer after sound steps", response(S1, S2, S3, END, answer="3"), 0.8),  # 4/5
    ("bare guess, right", response("I will just guess."), 0.2),  # 4 empty slots, 1 extra line, right answer: 1/6
    ("misseen colour", response(S1, "Shape 2 is a red square, so the count of red shapes is now 2.", S3, END), 0.8),
    ("a shape the scene does not have", response(S1, S2, S3, "Shape 4 is a red circle.", END), 0.8),  # 5/6
    ("two steps on one line", response(S1 + " " + S2, S3, END), 1.0),  # sentences are steps
    ("steps missing", response(S1, END), 0.6),  # 3/5
    ("garbage", "red red red 2", 0.0),  # no <think>/<answer> format
    ("format, nothing right", response("hmm", answer="7"), 0.0),  # 0/6
]


@pytest.mark.parametrize("name, text, score", CASES, ids=[c[0] for c in CASES])
def test_step_checker_and_judges_by_hand(name, text, score):
    assert scene_reasoning_score(PROBLEM, text) == score
    assert scene_judge_score("reliable", PROBLEM, text) == score
    assert scene_judge_score("adversarial", PROBLEM, text) == round(1 - score, 1)


def test_sound_lines_of_the_hand_problem():
    assert sound_lines(PROBLEM) == [S1, S2, S3, END]
    judgement = read_scene_response(PROBLEM, CASES[4][1])
    assert (judgement.num_steps, judgement.num_correct, judgement.answer_correct) == (7, 5, True)


def test_checker_agrees_with_write_response_on_every_flaw_but_the_guess():
    # The judge data's scores come from the same steps: the checker must give them back from the text alone.
    problems = make_scene_problems(90, seed=3)
    for i, problem in enumerate(problems):
        for flaw in [None, *FLAWS]:
            if flaw == "guess":
                continue
            text, score = write_response(problem, random.Random(i), flaw)
            assert scene_reasoning_score(problem, text) == score, (problem.problem_type, problem.kind, flaw, text)


def test_a_guess_counts_its_missing_steps_as_wrong():
    problem = make_scene_problems(1, seed=3)[0]
    text = f"<think>\nI will just guess.\n</think>\n<answer>{problem.answer}</answer>"
    num_slots = len(problem.shapes) + 1
    assert read_scene_response(problem, text).num_steps == num_slots + 2
    assert read_scene_response(problem, text).num_correct == 1


def test_index_finds_the_scene_from_what_the_trainer_hands_the_judge():
    problems = make_scene_problems(12, seed=5)
    data = scene_dataset(problems)  # images go through datasets' PNG encoding and back
    index = SceneIndex(problems)
    judge = SceneJudge("reliable", index)
    for problem, row in zip(problems, data):
        sound, _ = write_response(problem, random.Random(0), None)
        question, text, image = judge_inputs(row, row["prompt"], [{"role": "assistant", "content": sound}])
        assert index.lookup(question, image) is problem
        assert judge.score([question], [text], [image]) == [1.0]


def test_index_names_an_unknown_question():
    index = SceneIndex(make_scene_problems(3, seed=5))
    with pytest.raises(KeyError, match="How many red shapes"):
        index.lookup(PROBLEM.problem, PROBLEM.image)
    with pytest.raises(ValueError, match="misleading"):
        SceneJudge("misleading", index)


def test_grade_scenes_by_hand():
    metrics = grade_scenes(
        [PROBLEM, PROBLEM, PROBLEM, PROBLEM],
        [CASES[0][1], CASES[1][1], CASES[2][1], "garbage"],  # sound (right), slip (right), miscount (wrong), malformed
    )
    assert metrics["accuracy"] == 0.5
    assert metrics["sound"] == 0.25
    assert metrics["reasoning"] == pytest.approx((1.0 + 0.8 + 0.2 + 0.0) / 4)
    assert metrics["well_formed"] == 0.75
    assert metrics["accuracy/numerical"] == 0.5


def test_scene_problems_cycle_the_types_and_depend_on_seed_and_index_only():
    problems = make_scene_problems(6, seed=1)
    assert [p.problem_type for p in problems] == list(SCENE_PROBLEM_TYPES) * 2
    assert make_scene_problems(3, seed=1)[2].problem == problems[2].problem
    assert make_scene_problems(3, seed=2)[0].shapes != problems[0].shapes


def test_scenes_config():
    assert SCENES.judges == ["reliable", "adversarial"]
    with pytest.raises(ValueError, match="scenes task has the judges"):
        LabConfig(task="scenes", judges=["misleading"])
    assert run_settings(SCENES_QUICK)["scene_problem_types"] == list(SCENE_PROBLEM_TYPES)
    assert "scene_problem_types" not in run_settings(LabConfig())  # text runs keep the settings they were saved with


@pytest.mark.slow
def test_quick_scenes_lab_end_to_end(tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "learning_lab.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--task", "scenes", "--quick", "--output_dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SFT init 0" in proc.stdout and "mixed groups" in proc.stdout
    table = (tmp_path / "table.md").read_text()
    assert "| - | grpo | 1 |" in table and "| adversarial | trust_grpo | 1 |" in table
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {(r["arm"], r["judge"]) for r in saved["results"]} == {("grpo", None), ("trust_grpo", "adversarial")}
    for run in saved["results"]:
        assert [p["step"] for p in run["curve"]] == list(range(SCENES_QUICK.grpo_steps + 1))
        assert len(run["diagnostics"]) == SCENES_QUICK.grpo_steps
        for point in run["curve"]:
            assert 0 <= point["sound"] <= point["accuracy"] <= 1  # sound reasoning ends in the right answer
        for d in run["diagnostics"]:
            assert 0 <= d["mixed_frac"] <= 1
            assert math.isnan(d["gamma_mixed"]) or 0 < d["gamma_mixed"] <= 1
    start = [r["curve"][0]["accuracy"] for r in saved["results"]]
    assert start[0] == start[1]
    # Run again: every run and the warm start are reused.
    again = subprocess.run(
        [sys.executable, str(script), "--task", "scenes", "--quick", "--output_dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0 and "Reusing 2 finished run(s)" in again.stderr


def test_tables_add_the_reasoning_score_when_runs_have_one():
    def run(arm, judge, seed, reasoning):
        curve = [
            {"step": 0, "accuracy": 0.3, "sound": 0.0, "reasoning": 0.05},
            {"step": 2, "accuracy": 0.3, "sound": 0.0, "reasoning": reasoning},
        ]
        diagnostics = [{"step": 0, "mixed_frac": 1.0, "gamma_mixed": 0.9, "uniform_judge_acts": math.nan}]
        return {
            "arm": arm,
            "judge": judge,
            "seed": seed,
            "sft_seed": 0,
            "curve": curve,
            "diagnostics": diagnostics,
            "steps_per_second": 0.1,
        }

    results = [
        run("grpo", None, 0, 0.05),
        run("grpo", None, 1, 0.07),
        run("naive", "adversarial", 0, 0.03),  # -0.02
        run("naive", "adversarial", 1, 0.03),  # -0.04: mean -0.03, sd 0.0141, SE 0.01
    ]
    table = comparisons_table(results)
    assert "| judge | arm | pairs | accuracy vs GRPO | sound vs GRPO | reasoning score vs GRPO |" in table
    assert "| adversarial | naive | 2 | +0.000 ± 0.000 | +0.000 ± 0.000 | -0.030 ± 0.010, -3.0 SE |" in table
    summary = markdown_table(summarise(results))
    assert "reasoning score (start -> end)" in summary and "0.05 ± 0.00 -> 0.03 ± 0.00" in summary
