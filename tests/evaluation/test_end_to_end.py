"""`eval/evaluate.py --model` on the tiny policy over a local copy of every benchmark, in each benchmark's layout."""

import json
from collections import defaultdict

import pytest
from evaluation_helpers import NUM_ITEMS, load_cli

from sophia_trl.evaluation import BENCHMARKS, evaluate
from sophia_trl.evaluation.mme import COGNITION, PERCEPTION


def _accuracy(records):
    return 100 * sum(r["correct"] for r in records) / len(records)


def metrics_from_records(name, records):
    """Each benchmark's headline metrics recomputed from its per-item records, independently of the scorers."""
    if name in ("mathvista", "mmmu", "mmstar"):
        return {"accuracy": _accuracy(records)}
    if name == "mathverse":
        versions = defaultdict(list)
        for r in records:
            versions[r["problem_version"]].append(r)
        return {"average": sum(_accuracy(v) for v in versions.values()) / len(versions), "overall": _accuracy(records)}
    if name == "chartqa":
        return {"overall": _accuracy(records)}
    if name == "mme":
        images = defaultdict(list)
        for r in records:
            images[(r["category"], r["question_id"])].append(r["correct"])
        scores = {}
        for category in {c for c, _ in images}:
            answers = [ok for (c, _), oks in images.items() if c == category for ok in oks]
            pairs = [all(oks) for (c, _), oks in images.items() if c == category]
            scores[category] = 100 * sum(answers) / len(answers) + 100 * sum(pairs) / len(pairs)
        return {
            "perception": sum(s for c, s in scores.items() if c in PERCEPTION),
            "cognition": sum(s for c, s in scores.items() if c in COGNITION),
        }
    if name == "mmbench":
        questions = defaultdict(list)
        for r in records:
            questions[r["index"] % 1_000_000].append(r["correct"])
        return {"circular": 100 * sum(all(oks) for oks in questions.values()) / len(questions)}
    raise AssertionError(name)


def test_cli_generates_and_scores_every_benchmark(tiny_vlm_dir, benchmark_copies, tmp_path, capsys):
    output = tmp_path / "report.json"
    argv = ["--model", str(tiny_vlm_dir), "--benchmark", "all", "--output", str(output)]
    argv += ["--max_new_tokens", "4", "--batch_size", "4", "--device", "cpu"]
    for name, path in benchmark_copies.items():
        argv += ["--data", f"{name}={path}"]
    load_cli().main(argv)

    report = json.loads(output.read_text())
    assert report["generation"]["decoding"] == "greedy"
    assert report["generation"]["max_new_tokens"] == 4
    assert report["judge"] is None
    assert list(report["benchmarks"]) == list(BENCHMARKS)
    table = capsys.readouterr().out
    for name, result in report["benchmarks"].items():
        records = result["records"]
        assert result["num_items"] == len(records) == NUM_ITEMS[name], name
        assert result["data"] == str(benchmark_copies[name])
        for record in records:
            assert isinstance(record["response"], str)
            assert record["answer_source"] in ("answer_tag", "after_think", "full_response", "empty")
            assert isinstance(record["correct"], bool)
            assert record["truncated"] is True  # 4 new tokens never reach the end token
        assert result["answers"]["truncated"] == len(records)
        assert sum(result["answers"]["answer_sources"].values()) == len(records)
        assert result["answers"]["unparsable"] == sum(r["prediction"] is None for r in records)
        for metric, value in metrics_from_records(name, records).items():
            assert result["metrics"][metric] == pytest.approx(value), (name, metric)
        assert f"| {name} |" in table

        # the saved responses re-score to the same numbers without the model
        rescored = evaluate([name], tmp_path / f"{name}.json", predictions=[result["predictions_file"]])
        assert rescored["benchmarks"][name]["metrics"] == pytest.approx(result["metrics"])

    # MMBench's local copy holds one question with three options and no rotated copies: all three are generated
    assert sorted(r["index"] for r in report["benchmarks"]["mmbench"]["records"]) == [7, 1_000_007, 2_000_007]
