"""benchmarks/step_time.py: the policy it builds and the ratios it prints."""

from benchmarks.step_time import Setting, build_policy, print_table


def test_ratios_printed_from_medians_after_warmup(capsys):
    grpo = Setting("grpo beta=0.04", 0.04)
    overlap = Setting("server S=0.5 overlap beta=0.04", 0.04, judge=object(), overlap=True, service_time=0.5)
    records = {
        # warm-up round first (left out), then 3 rounds: medians step 2.0 / 2.2, scoring 0.3 / 0.4, rewards 0 / 0.1
        grpo.name: [{"step": 9.0, "scoring": 9.0, "rewards": 9.0, "logprobs": 9.0}]
        + [{"step": s, "scoring": 0.3, "rewards": 0.0, "logprobs": 0.29} for s in (1.0, 2.0, 5.0)],
        overlap.name: [{"step": 9.0, "scoring": 9.0, "rewards": 9.0, "logprobs": 9.0}]
        + [{"step": s, "scoring": c, "rewards": r, "logprobs": 0.3} for s, c, r in ((2.2, 0.4, 0.1),) * 3],
    }
    print_table([grpo, overlap], records, warmup_rounds=1)
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| server")][0]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # step 2.2, after generation 0.4, log-probs 0.3, rewards 0.1; 2.2 / 2.0 = 1.10; (2.2 - 2.0) / 0.5 = 0.40;
    # (0.4 - 0.3) / 0.5 = 0.20; (0.1 - 0.0) / 0.5 = 0.20
    assert cells[1:] == ["2.200", "0.400", "0.300", "0.100", "1.10", "0.40", "0.20", "0.20"]


def test_build_policy_has_the_requested_depth_and_width(tmp_path):
    from transformers import AutoConfig

    build_policy(tmp_path / "policy", hidden_size=64, num_layers=3)
    config = AutoConfig.from_pretrained(tmp_path / "policy").get_text_config()
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (64, 3, 256)
