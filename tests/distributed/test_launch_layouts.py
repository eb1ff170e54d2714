"""Every launch layout gives the same rewards: 1 process x batch 16 against 2 processes x batch 8 (torchrun, gloo, CPU),
with a group split across the processes, gradient accumulation with steps_per_generation and num_iterations > 1, the
overlapped judge path, the official preset with failed judge calls, scale_rewards="batch" and the counters to a gamed
judge (gate, length-neutral scores, normalize_then_sum) on a split group; and a judge error on one process stops every
process with that error.

The runs are those of `layouts.py` (one launch per layout, every case in it). The advantages and metrics are compared
between layouts and between cases, not against a formula: they hold whatever the rule for failed judge calls is.
"""

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("layouts.py")
LAYOUT_CASES = [
    "whole_groups",
    "split_group",
    "accumulation",
    "overlapped",
    "official",
    "scale_batch",
    "gamed_counters",
]

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def layouts(launch, tiny_vlm_dir, tmp_path_factory):
    """What each rank wrote in the 1-process and the 2-process launch (run side by side: each mostly waits)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        one = pool.submit(launch, SCRIPT, tiny_vlm_dir, tmp_path_factory.mktemp("one"), 1, timeout=300)
        two = pool.submit(launch, SCRIPT, tiny_vlm_dir, tmp_path_factory.mktemp("two"), 2, timeout=300)
        (single,), ranks = one.result(), two.result()
    assert single["num_processes"] == 1
    assert [r["num_processes"] for r in ranks] == [2, 2]
    return single, ranks


@pytest.fixture(scope="module")
def one_process(layouts):
    return layouts[0]


@pytest.fixture(scope="module")
def two_processes(layouts):
    return layouts[1]


def gathered(ranks: list[dict], case: str) -> list[dict]:
    """The records of a case as one process would see them: each generation's rows of rank 0, then of rank 1."""
    records = []
    for per_rank in zip(*(r[case]["records"] for r in ranks)):
        assert len({r["global_step"] for r in per_rank}) == 1
        assert all(r["metrics"] == per_rank[0]["metrics"] for r in per_rank)  # every process logs the same trust/*
        records.append(
            {
                "global_step": per_rank[0]["global_step"],
                "texts": [t for r in per_rank for t in r["texts"]],
                "advantages": [a for r in per_rank for a in r["advantages"]],
                "metrics": per_rank[0]["metrics"],
            }
        )
    return records


def assert_same_records(got: list[dict], want: list[dict], same_steps: bool = True) -> None:
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        if same_steps:
            assert g["global_step"] == w["global_step"]
        assert g["texts"] == w["texts"]
        assert g["advantages"] == pytest.approx(w["advantages"], abs=1e-6)
        assert g["metrics"].keys() == w["metrics"].keys()
        for name, values in w["metrics"].items():
            assert g["metrics"][name] == pytest.approx(values, abs=1e-6, nan_ok=True), name


def metric(records: list[dict], name: str) -> list[float]:
    return [v for r in records for v in r["metrics"][name]]


def test_trust_weights_of_a_split_group_are_worked_by_hand(one_process, two_processes):
    # Thinking column: gamma * 0.3 * R_t with gamma = exp(-0.5), exp(-0.5), 1 for the three groups (no failed call).
    t = [0.2, 0.4, 0.9, 0.7, 0.1, 0.5, 0.3, 0.9, 0.9, 0.8, 0.7, 0.1]
    gammas = [math.exp(-0.5)] * 8 + [1.0] * 4
    expected = [g * 0.3 * x for g, x in zip(gammas, t)]
    for result in [one_process, *two_processes]:
        rewards = result["hand_worked"]["rewards"]  # gathered: every process returns all 12 rows
        assert [row[1] for row in rewards] == pytest.approx(expected, rel=1e-5)
        assert [row[0] for row in rewards] == [1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0]
        metrics = result["hand_worked"]["metrics"]
        assert metrics["trust/gamma_mean"] == pytest.approx((2 * math.exp(-0.5) + 1) / 3, rel=1e-5)
        assert metrics["trust/judge_calls"] == 12


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_two_processes_give_the_advantages_and_metrics_of_one(one_process, two_processes, case):
    single = one_process[case]["records"]
    assert_same_records(gathered(two_processes, case), single)
    # The case walks the paths it is named for: failed judge calls, and groups that hold right and wrong answers.
    assert sum(metric(single, "trust/judge_failed")) > 0
    assert 0 < min(metric(single, "trust/mixed_group_frac")) and max(metric(single, "trust/mixed_group_frac")) < 1


def test_the_cases_take_the_paths_they_are_named_for(one_process, two_processes):
    # 6 rows per process with groups of 4: the second group of each batch is split across the processes.
    assert {len(r["texts"]) for rank in two_processes for r in rank["split_group"]["records"]} == {6}
    assert "trust/reliability_auc" in one_process["split_group"]["records"][0]["metrics"]
    # The official preset skips rows and groups; scale_rewards="batch" changes the advantages.
    assert sum(metric(one_process["official"]["records"], "trust/judge_skipped")) > 0
    batch, group = (one_process[case]["records"][0]["advantages"] for case in ("scale_batch", "whole_groups"))
    assert batch != pytest.approx(group, abs=1e-3)


def test_the_overlapped_judge_gives_the_synchronous_rewards(one_process, two_processes):
    # Same completions, scored through a loopback server sent right after generation vs in-process in the rewards.
    assert_same_records(one_process["overlapped"]["records"], one_process["whole_groups"]["records"])
    assert_same_records(gathered(two_processes, "overlapped"), one_process["whole_groups"]["records"])


def test_accumulated_generations_anneal_with_the_step_they_were_generated_at(one_process):
    # steps_per_generation=2, gradient_accumulation_steps=2, num_iterations=2: a generation every 4 micro-steps, i.e.
    # every 2 optimizer steps; its rewards use alpha_t of the optimizer steps finished before it was generated.
    accumulated = one_process["accumulation"]["records"]
    assert [r["global_step"] for r in accumulated] == [0, 2]
    assert metric(accumulated, "trust/alpha") == pytest.approx([0.3, 0.3 * math.exp(-2 / 4)])
    # With T doubled it is whole_groups' run (a generation per step, T = 2), generation for generation.
    assert_same_records(accumulated, one_process["whole_groups"]["records"], same_steps=False)


@pytest.mark.parametrize("case", ["judge_error", "judge_error_at_send"])
def test_a_judge_error_on_one_process_stops_every_process(two_processes, case):
    # Rank 1's judge raises (when scoring, or when its request is sent right after generation); without the
    # agreement rank 0 would wait in the gather of the scores and fail with gloo's "Connection closed by peer".
    errors = [rank[case] for rank in two_processes]
    assert errors[0] == errors[1]
    assert errors[0]["error"] == "JudgeUnreachable"
    assert errors[0]["message"] == "judge at http://judge-host:8001/v1 refused the connection (rank 1)"
    assert errors[0]["notes"] == ["Raised on process 1; every process of the run stops with this error."]
