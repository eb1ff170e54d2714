"""benchmarks/judge_prefix.py: the group it scores and the ratio it prints."""

from benchmarks.judge_prefix import build_group, format_report


def test_ratio_printed_from_medians_after_warmup():
    # warm-up round first (left out), then medians 4.0 (off) and 2.0 (on): 2.00x
    times = {False: [9.0, 3.0, 4.0, 6.0], True: [9.0, 1.0, 2.0, 2.5]}
    assert format_report(times, warmup_rounds=1) == (
        "share_prefix off: median 4.000 s | share_prefix on: median 2.000 s | ratio 2.00x"
    )


def test_group_is_one_question_and_image_with_different_responses():
    questions, responses, images = build_group(8, image_size=448)
    assert len(set(questions)) == 1 and len(set(map(id, images))) == 1 and images[0].size == (448, 448)
    assert len(set(responses)) == 8
