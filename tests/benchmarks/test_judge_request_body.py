"""benchmarks/judge_request_body.py runs end to end (its bytes check included); it reports times, which no test checks."""

from benchmarks.judge_request_body import main


def test_runs_and_reports_both_ways(capsys):
    result = main(["--image_size", "64", "--group_size", "3", "--rounds", "2"])
    assert set(result) == {"json.dumps per request", "RequestBodyEncoder", "ratio"}
    assert "ratio:" in capsys.readouterr().out
