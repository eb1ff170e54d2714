"""The learning lab: task checker, judges and diagnostics against hand-worked values, and the --quick run end to end."""

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.lab.experiment import (
    QUICK,
    LabConfig,
    RunSpec,
    build_policy,
    comparisons_table,
    grade,
    group_diagnostics,
    lab_outcome_reward,
    load_finished,
    markdown_table,
    moving_average,
    paired_difference,
    plot_curves,
    plot_diagnostics,
    run_arm,
    run_settings,
    summarise,
)
from benchmarks.lab.judges import LabJudge, judge_score, parse_problem
from benchmarks.lab.task import (
    TASKS,
    ArithmeticProblem,
    build_tokenizer,
    make_problems,
    read_response,
    reasoning_score,
    write_response,
)

PROBLEM = ArithmeticProblem((7, 3, 2, 5), ("+", "-", "+"))  # totals 10, 8, 13
SOUND = "<think> 7 + 3 = 10 , 10 - 2 = 8 , 8 + 5 = 13 </think> <answer> 13 </answer>"
SLIP = "<think> 7 + 3 = 11 , 10 - 2 = 8 , 8 + 5 = 13 </think> <answer> 13 </answer>"
CARRIED_FIRST = "<think> 7 + 3 = 11 , 11 - 2 = 9 , 9 + 5 = 14 </think> <answer> 14 </answer>"
CARRIED_LAST = "<think> 7 + 3 = 10 , 10 - 2 = 8 , 8 + 5 = 15 </think> <answer> 15 </answer>"
FILLER_RIGHT = "<think> let me think ok </think> <answer> 13 </answer>"
FILLER_WRONG = "<think> hmm well </think> <answer> 12 </answer>"
MALFORMED = "13 13 = ,"

# response, style, answer right, reliable score: (correct steps + right answer) / 4, halves rounded up to a tenth
CASES = [
    (SOUND, "sound", True, 1.0),  # 4/4
    (SLIP, "slip", True, 0.8),  # 3/4 = 0.75 -> 0.8
    (CARRIED_FIRST, "carried", False, 0.0),  # every later step starts from the wrong total: 0/4
    (CARRIED_LAST, "carried", False, 0.5),  # 2/4
    (FILLER_RIGHT, "filler", True, 0.3),  # 1/4 = 0.25 -> 0.3
    (FILLER_WRONG, "filler", False, 0.0),
    (MALFORMED, "other", False, 0.0),
]


def test_problem_prompt_and_totals():
    assert PROBLEM.prompt == "7 + 3 - 2 + 5 ="
    assert PROBLEM.totals == (10, 8, 13)
    assert PROBLEM.answer == 13
    assert parse_problem(PROBLEM.prompt) == PROBLEM


def test_parse_problem_names_the_bad_prompt():
    with pytest.raises(ValueError, match="Not a learning-lab prompt: '7 \\* 3 ='"):
        parse_problem("7 * 3 =")


@pytest.mark.parametrize("response, style, right, score", CASES)
def test_read_response_and_reasoning_score(response, style, right, score):
    judgement = read_response(PROBLEM, response)
    assert judgement.style == style
    assert judgement.answer_correct is right
    assert reasoning_score(PROBLEM, response) == score


@pytest.mark.parametrize("response, style, right, score", CASES)
def test_judges(response, style, right, score):
    assert judge_score("reliable", PROBLEM, response) == score
    assert judge_score("adversarial", PROBLEM, response) == round(1 - score, 1)
    # misleading: 0.2 q for a right answer, 0.8 + 0.2 q for a wrong one, q = fraction of correct steps
    q = sum(read_response(PROBLEM, response).steps_correct) / 3
    assert judge_score("misleading", PROBLEM, response) == round(0.2 * q if right else 0.8 + 0.2 * q, 1)


def test_misleading_judge_by_hand():
    assert judge_score("misleading", PROBLEM, SOUND) == 0.2  # q = 1, right
    assert judge_score("misleading", PROBLEM, CARRIED_LAST) == 0.9  # 0.8 + 0.2 * 2/3 = 0.933
    assert judge_score("misleading", PROBLEM, FILLER_WRONG) == 0.8  # q = 0, wrong


@pytest.mark.parametrize(
    "response, score",
    [
        (SOUND, 0.5),  # 17 reasoning tokens: 0.5 * 17/30 + 0.2 * 1.0 = 0.483
        (SOUND.replace(" </think>", " ok so </think>"), 0.7),  # 19 tokens, filler, now unsound (q 0.3): 0.677
        (FILLER_RIGHT, 0.4),  # 4 tokens, filler, q 0.3: 0.067 + 0.3 + 0.06 = 0.427
        (CARRIED_LAST, 0.4),  # 17 tokens, q 0.5: 0.283 + 0.1 = 0.383
        ("<think>" + " ok" * 35 + " </think> <answer> 13 </answer>", 0.9),  # full length, filler, q 0.3: 0.86
        (MALFORMED, 0.0),  # no reasoning to read
    ],
)
def test_gamed_judge_by_hand(response, score):
    """Length and a filler word raise the gamed judge's score above sound reasoning's; soundness counts 0.2."""
    assert judge_score("gamed", PROBLEM, response) == score
    assert LabJudge("gamed").score([PROBLEM.prompt], [response]) == [score]


def test_lab_judge_goes_through_the_judge_interface():
    judge = LabJudge("adversarial")
    scores = judge.score([PROBLEM.prompt] * 3, [SOUND, SLIP, FILLER_RIGHT])
    assert scores == [0.0, 0.2, 0.7]
    assert judge.num_requests == 3
    with pytest.raises(ValueError, match="Unknown judge kind"):
        LabJudge("oracle")


def test_written_responses_have_the_style_they_were_written_with():
    rng = random.Random(0)
    expected = {None: "sound", "slip": "slip", "carried": "carried", "filler": "filler"}
    for problem in make_problems(200, seed=3):
        assert min(problem.totals) >= 0
        for flaw, style in expected.items():
            response = write_response(problem, rng, flaw)
            assert read_response(problem, response).style == style, response


def test_tokenizer_has_one_token_per_word():
    tokenizer = build_tokenizer()
    ids = tokenizer(SOUND)["input_ids"]
    assert len(ids) == len(SOUND.split())
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == SOUND


def test_outcome_reward():
    assert lab_outcome_reward([SOUND, CARRIED_LAST, FILLER_RIGHT, MALFORMED], [PROBLEM.prompt] * 4) == [1, 0, 1, 0]


def test_grade_by_hand():
    result = grade([PROBLEM] * 4, [SOUND, SLIP, CARRIED_LAST, FILLER_WRONG])
    assert result["accuracy"] == 0.5
    assert result["sound"] == 0.25
    assert result["style/filler"] == 0.25 and result["accuracy/filler"] == 0.0
    assert math.isnan(result["accuracy/other"])


def test_group_diagnostics_by_hand():
    # Three groups of 4: mixed, all right (judge scores differ), all wrong (judge scores equal).
    outcome = torch.tensor([1.0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    bonus = torch.tensor([0.0, 0.1, 0.2, 0.2, 0.3, 0.0, 0.3, 0.3, 0.1, 0.1, 0.1, torch.nan])
    gamma = torch.tensor([0.5] * 4 + [1.0] * 8)
    result = group_diagnostics(outcome, bonus, gamma, num_generations=4)
    assert result["mixed_frac"] == pytest.approx(1 / 3)
    assert result["gamma_mixed"] == pytest.approx(0.5)
    # Group 2 differs; group 3 has a NaN (failed call, adds nothing = 0) next to 0.1: it differs too.
    assert result["uniform_judge_acts"] == pytest.approx(1.0)
    bonus[11] = 0.1
    assert group_diagnostics(outcome, bonus, gamma, 4)["uniform_judge_acts"] == pytest.approx(0.5)
    no_judge = group_diagnostics(outcome, None, None, 4)
    assert no_judge["mixed_frac"] == pytest.approx(1 / 3) and math.isnan(no_judge["gamma_mixed"])


def test_run_arm_smoke(tmp_path):
    # One Trust-GRPO arm for 2 steps from an untrained policy, in this process: trainer, judge, diagnostics, evaluation.
    tokenizer = build_tokenizer()
    build_policy(tokenizer, seed=0).save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    config = LabConfig(grpo_steps=2, eval_every=1, eval_prompts=8, prompts_per_step=2, max_completion_length=8)
    spec = RunSpec("trust_grpo", "adversarial", 0, 0, str(tmp_path / "policy"), str(tmp_path / "run"), config)
    result = run_arm(spec)
    assert [p["step"] for p in result["curve"]] == [0, 1, 2]
    assert [d["step"] for d in result["diagnostics"]] == [0, 1]
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["arm"] == "trust_grpo" and saved["settings"] == run_settings(config)
    assert [p["accuracy"] for p in load_finished(spec)["curve"]] == [p["accuracy"] for p in result["curve"]]


def _result(arm, judge, seed, sft_seed, accuracy):
    # A saved run as run_arm writes it, with a two-point curve and one step of diagnostics.
    curve = [{"step": 0, "accuracy": 0.4, "sound": 0.3}, {"step": 10, "accuracy": accuracy, "sound": accuracy / 2}]
    diagnostics = [{"step": 0, "mixed_frac": 0.5, "gamma_mixed": math.nan, "uniform_judge_acts": math.nan}]
    return {
        "arm": arm,
        "judge": judge,
        "seed": seed,
        "sft_seed": sft_seed,
        "steps_per_second": 1.0,
        "curve": curve,
        "diagnostics": diagnostics,
    }


def test_summarise_pools_seeds_and_sft_inits_and_splits_them_on_request():
    results = [_result("grpo", None, 0, 0, 0.6), _result("grpo", None, 1, 0, 0.8), _result("grpo", None, 0, 1, 0.4)]
    (pooled,) = summarise(results)
    assert pooled["runs"] == 3
    assert pooled["accuracy"] == pytest.approx((0.6, 0.2))  # mean of 0.6, 0.8, 0.4; sample sd 0.2
    per_init = summarise(results, per_sft_init=True)
    assert [(r["sft_init"], r["runs"]) for r in per_init] == [(0, 2), (1, 1)]
    assert per_init[0]["accuracy"][0] == pytest.approx(0.7) and per_init[1]["accuracy"] == pytest.approx((0.4, 0.0))
    table = markdown_table(per_init)
    assert table.splitlines()[0].startswith("| SFT init | judge | arm |")
    assert "| 1 | - | grpo | 1 | 0.40 ± 0.00 -> 0.40 ± 0.00 | 0.30 ± 0.00 -> 0.20 ± 0.00 | +0.000 ± 0.000 |" in table
    assert markdown_table(summarise(results)).splitlines()[0].startswith("| judge | arm |")


def test_summarise_pairs_each_run_with_the_grpo_run_of_the_same_seed_and_sft_init():
    grpo = [_result("grpo", None, 0, 0, 0.6), _result("grpo", None, 1, 0, 0.8), _result("grpo", None, 0, 1, 0.4)]
    naive = [_result("naive", "adversarial", 0, 0, 0.5), _result("naive", "adversarial", 1, 0, 0.8)]
    naive.append(_result("naive", "adversarial", 0, 1, 0.5))
    orphan = [_result("trust", "adversarial", 2, 0, 0.9)]  # seed 2 has no GRPO run
    rows = {row["arm"]: row for row in summarise(grpo + naive + orphan)}
    # differences -0.1, 0.0, +0.1: mean 0, sample sd 0.1; sound is accuracy / 2 in `_result`, so half of that
    assert rows["naive"]["accuracy_vs_grpo"] == pytest.approx((0.0, 0.1))
    assert rows["naive"]["sound_vs_grpo"] == pytest.approx((0.0, 0.05))
    assert rows["grpo"]["accuracy_vs_grpo"] == pytest.approx((0.0, 0.0))
    assert all(math.isnan(v) for v in rows["trust"]["accuracy_vs_grpo"])
    # Rows come in the declared order (no judge first, then by judge, then by arm), whatever order the runs finished in.
    reliable = [_result("naive", "reliable", 0, 0, 0.7)]
    assert [(r["judge"], r["arm"]) for r in summarise(orphan + naive + reliable + grpo)] == [
        ("-", "grpo"),
        ("reliable", "naive"),
        ("adversarial", "naive"),
        ("adversarial", "trust"),
    ]
    table = markdown_table(summarise(naive[:1] + grpo[:1]))
    assert (
        "| adversarial | naive | 1 | 0.40 ± 0.00 -> 0.50 ± 0.00 | 0.30 ± 0.00 -> 0.25 ± 0.00 | -0.100 ± 0.000 |"
        in table
    )


def test_moving_average_by_hand():
    assert moving_average([1.0, 3.0, math.nan, 5.0], window=2) == [1.0, 2.0, 3.0, 5.0]
    smoothed = moving_average([math.nan, 0.5], window=3)
    assert math.isnan(smoothed[0]) and smoothed[1] == 0.5


def test_plots_from_saved_runs(tmp_path):
    results = [_result("grpo", None, 0, 0, 0.6), _result("naive", "adversarial", 0, 0, 0.5)]
    results[1]["diagnostics"][0].update(gamma_mixed=0.5, uniform_judge_acts=1.0)
    plot_curves(results, ["adversarial"], tmp_path / "curves.png")
    plot_diagnostics(results, ["adversarial"], tmp_path / "diagnostics.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"


def test_finished_runs_are_reused_only_with_the_same_settings(tmp_path):
    config = LabConfig(grpo_steps=10)
    spec = RunSpec("grpo", None, 0, 0, "unused", str(tmp_path / "run"), config)
    assert load_finished(spec) is None  # nothing saved yet
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_text('{"arm": "grpo", "curve": [')  # a truncated file
    assert load_finished(spec) is None
    saved = {**_result("grpo", None, 0, 0, 0.6), "settings": run_settings(config)}
    (tmp_path / "run" / "result.json").write_text(json.dumps(saved))
    assert load_finished(spec)["curve"][-1]["accuracy"] == 0.6
    longer = RunSpec("grpo", None, 0, 0, "unused", str(tmp_path / "run"), LabConfig(grpo_steps=300))
    assert load_finished(longer) is None  # a different number of steps is a different run
    # Settings that do not change one run (which arms, judges, seeds or workers a lab runs) do not block reuse.
    wider = LabConfig(grpo_steps=10, arms=["grpo", "naive"], judges=["reliable"], seeds=3, workers=1)
    assert load_finished(RunSpec("grpo", None, 0, 0, "unused", str(tmp_path / "run"), wider)) is not None


@pytest.mark.slow
def test_quick_lab_end_to_end(tmp_path):
    # The command the README gives, as a user runs it.
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "learning_lab.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--output_dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SFT init 0" in proc.stdout and "| - | grpo | 1 |" in proc.stdout
    table = (tmp_path / "table.md").read_text()
    assert "| - | grpo | 1 |" in table and "| adversarial | trust_grpo | 1 |" in table
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "diagnostics.png").stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {(r["arm"], r["judge"]) for r in saved["results"]} == {("grpo", None), ("trust_grpo", "adversarial")}
    for run in saved["results"]:
        steps = list(range(0, QUICK.grpo_steps + 1, QUICK.eval_every))
        assert [p["step"] for p in run["curve"]] == steps
        assert len(run["diagnostics"]) == QUICK.grpo_steps
        for point in run["curve"]:
            assert 0 <= point["accuracy"] <= 1
            assert sum(point[f"style/{s}"] for s in ("sound", "slip", "carried", "filler", "other")) == pytest.approx(
                1
            )
        for d in run["diagnostics"]:
            assert 0 <= d["mixed_frac"] <= 1
            assert math.isnan(d["gamma_mixed"]) or 0 < d["gamma_mixed"] <= 1
    # The SFT check covers every style; step 0 is the SFT model itself, so both arms start from the same curve point.
    start = [r["curve"][0]["accuracy"] for r in saved["results"]]
    assert start[0] == start[1]
    assert saved["seconds"] > 0


SPARSE = ArithmeticProblem((7, 8, 6, 9, 3), ("+", "-", "+", "-"))  # totals 15, 9, 18, 15


@pytest.mark.parametrize(
    "response, style, right, reliable",
    [
        (
            "<think> 7 + 8 = 15 , 15 - 6 = 9 , 9 + 9 = 18 , 18 - 3 = 15 </think> <answer> 15 </answer>",
            "sound",
            True,
            1.0,
        ),
        (
            "<think> 7 + 8 = 15 , 15 - 6 = 10 , 9 + 9 = 18 , 18 - 3 = 15 </think> <answer> 15 </answer>",
            "slip",
            True,
            0.8,
        ),
        # the error carried from the third step: 2 correct steps of 5 (answer included)
        (
            "<think> 7 + 8 = 15 , 15 - 6 = 9 , 9 + 9 = 17 , 17 - 3 = 14 </think> <answer> 14 </answer>",
            "carried",
            False,
            0.4,
        ),
        ("<think> so hmm ok </think> <answer> 15 </answer>", "filler", True, 0.2),  # the answer only: 1/5
        ("<think> 7 + 8 = 15 , 15 - 6 = 9 </think> <answer> 15 </answer>", "other", True, 0.2),  # steps missing
    ],
)
def test_sparse_task_checks_four_steps(response, style, right, reliable):
    problem = parse_problem(SPARSE.prompt)
    assert problem == SPARSE and SPARSE.prompt == "7 + 8 - 6 + 9 - 3 ="
    judgement = read_response(problem, response)
    assert (judgement.style, judgement.answer_correct) == (style, right)
    assert reasoning_score(problem, response) == reliable
    assert judge_score("adversarial", problem, response) == pytest.approx(1 - reliable)


def test_sparse_task_writes_what_it_reads_and_fits_its_vocabulary():
    variant = TASKS["sparse"]
    assert (variant.num_operands, variant.max_operand, variant.max_number) == (5, 9, 47)
    tokenizer = build_tokenizer(variant.max_number)
    rng = random.Random(0)
    for problem in make_problems(100, seed=1, variant=variant):
        assert len(problem.operands) == 5 and min(problem.totals) >= 0
        for flaw in (None, "slip", "carried", "filler"):
            response = write_response(problem, rng, flaw, variant.max_number)
            assert read_response(problem, response).style == (flaw or "sound")
            ids = tokenizer(response)["input_ids"]
            assert tokenizer.unk_token_id not in ids
            assert len(ids) + 1 <= variant.max_completion_length  # with the EOS


def test_lab_config_takes_the_task_completion_length():
    assert LabConfig().max_completion_length == 32
    assert LabConfig(task="sparse").max_completion_length == 36
    assert LabConfig(task="sparse", max_completion_length=48).max_completion_length == 48
    with pytest.raises(ValueError, match="Unknown task 'hard'"):
        LabConfig(task="hard")


def test_paired_differences_by_hand():
    results = [_result("grpo", None, s, 0, a) for s, a in enumerate((0.5, 0.6, 0.7))]
    results += [_result("trust_grpo", "reliable", s, 0, a) for s, a in enumerate((0.55, 0.6, 0.8))]
    results += [_result("reliability", "reliable", s, 0, a) for s, a in enumerate((0.6, 0.8, 0.8))]
    # vs GRPO: +0.1, +0.2, +0.1 -> mean 0.1333, sd 0.0577, SE 0.0333
    mean, se, n = paired_difference(results, "reliability", "reliable", "grpo", None, "accuracy")
    assert (mean, se, n) == (pytest.approx(0.4 / 3), pytest.approx(0.1 / math.sqrt(3) / math.sqrt(3)), 3)
    # vs trust_grpo: +0.05, +0.2, 0.0 -> mean 0.0833, sd sqrt(0.02167 / 2) = 0.1041, SE 0.0601
    mean, se, n = paired_difference(results, "reliability", "reliable", "trust_grpo", "reliable", "accuracy")
    assert (mean, se, n) == (pytest.approx(0.25 / 3), pytest.approx(math.sqrt(0.065 / 6) / math.sqrt(3)), 3)
    mean, se, n = paired_difference(results, "reliability", "adversarial", "grpo", None, "accuracy")
    assert math.isnan(mean) and n == 0
    lines = comparisons_table(results).splitlines()
    # Rows in the declared arm order; sound is accuracy / 2 in `_result`, so its differences are halved.
    assert lines[2] == "| reliable | trust_grpo | 3 | +0.050 ± 0.029, +1.7 SE | +0.025 ± 0.014, +1.7 SE | - | - |"
    assert lines[3] == (
        "| reliable | reliability | 3 | +0.133 ± 0.033, +4.0 SE | +0.067 ± 0.017, +4.0 SE | +0.083 ± 0.060, +1.4 SE | "
        "+0.042 ± 0.030, +1.4 SE |"
    )


@pytest.mark.parametrize(
    "arm, judge",
    [
        ("reliability", "reliable"),
        ("reliability_separate", "reliable"),
        ("posterior_gate", "gamed"),
        ("length_neutral", "gamed"),
    ],
)
def test_run_arm_smoke_with_a_rule_or_counter(tmp_path, arm, judge):
    tokenizer = build_tokenizer(TASKS["sparse"].max_number)
    build_policy(tokenizer, seed=0).save_pretrained(tmp_path / "policy")
    tokenizer.save_pretrained(tmp_path / "policy")
    config = LabConfig(grpo_steps=2, eval_every=2, eval_prompts=8, prompts_per_step=2, task="sparse")
    spec = RunSpec(arm, judge, 0, 0, str(tmp_path / "policy"), str(tmp_path / "run"), config)
    result = run_arm(spec)
    assert [p["step"] for p in result["curve"]] == [0, 2]
    assert all(p["length"] > 0 for p in result["curve"])  # mean completion tokens, measured for every arm
    for d in result["diagnostics"]:  # the raw outcome decides mixed groups, not the (possibly normalised) column
        assert d["mixed_frac"] in (0.0, 0.5, 1.0)


def test_first_seed_adds_seeds_to_a_lab():
    from benchmarks.learning_lab import parse_args

    args = parse_args(["--first_seed", "5", "--seeds", "5"])
    assert (args.first_seed, args.seeds) == (5, 5)
    assert parse_args([]).first_seed is None  # the config's default (0) applies
    assert LabConfig().first_seed == 0
    with pytest.raises(ValueError, match="first_seed must be >= 0, got -1"):
        LabConfig(first_seed=-1)
