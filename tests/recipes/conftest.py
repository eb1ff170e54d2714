import pytest
from hub_fakes import DATASET_ID, HUB_REPO, HubCalls


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory):
    """A small synthetic multimodal dataset (`train` 16 rows, `test` 4 rows) saved with `save_to_disk`. Every row has
    an image: with one prompt group per step, a step of a text-only row alone fails in TrustGRPOTrainer (TRL passes a
    batch of `None` images to the processor), which is not what these tests are about."""
    from datasets import DatasetDict

    from sophia_trl.tiny.scenes import make_synthetic_dataset

    path = tmp_path_factory.mktemp("synthetic-data")
    DatasetDict({"train": make_synthetic_dataset(16, seed=0), "test": make_synthetic_dataset(4, seed=1)}).save_to_disk(
        path
    )
    return path


@pytest.fixture
def gpu_parsing(monkeypatch):
    """Parse GPU recipes on this CPU machine as on a GPU one: transformers refuses bf16 when no GPU supports it."""
    import transformers.training_args

    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda: True)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One torch thread in these tests: on a small machine shared with other processes, torch's thread pool thrashes
    (a 2-step tiny run measured 65 s with the default threads under load, 11 s with one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def parity_outcome(completions, **kwargs):
    """Outcome reward for the logging and Hub tests: 1 when the completion's text has an even number of characters."""
    from sophia_trl.judges import response_of

    return [float(len(response_of(c)) % 2 == 0) for c in completions]


class AdversarialJudge:
    """Scores 1 the reasoning of the completions `parity_outcome` calls wrong and 0 the others, so every group with
    right and wrong completions has mu_c = 0 < mu_w = 1 and a trust weight gamma = exp(-1)."""

    def score(self, questions, responses, images=None):
        return [float(len(r) % 2 == 1) for r in responses]


@pytest.fixture(scope="session")
def logged_and_pushed_run(tiny_vlm_dir, synthetic_data_dir, tiny_grpo_config, tmp_path_factory):
    """
    Two Trust-GRPO steps on the tiny VLM with wandb (offline) and trackio (local) logging, completions tables on, then
    `push_to_hub` with the Hub calls recorded. Returns (trainer, output_dir, wandb_dir, trackio_dir, hub_calls).
    """
    import torch
    from datasets import load_from_disk
    from transformers import AutoProcessor

    from sophia_trl.grpo_trainer import TrustGRPOTrainer

    root = tmp_path_factory.mktemp("logged-run")
    output_dir, wandb_dir, trackio_dir = root / "out", root / "wandb", root / "trackio"
    wandb_dir.mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("WANDB_MODE", "offline")
        monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
        monkeypatch.setenv("WANDB_DATA_DIR", str(wandb_dir / "data"))  # where wandb stages a table's images
        monkeypatch.setenv("WANDB_SILENT", "true")
        monkeypatch.setenv("TRACKIO_DIR", str(trackio_dir))
        import sys

        # trackio reads TRACKIO_DIR once, at import, into several modules: point all of them at the test's folder.
        for name, module in list(sys.modules.items()):
            if name.startswith("trackio") and hasattr(module, "TRACKIO_DIR"):
                monkeypatch.setattr(module, "TRACKIO_DIR", trackio_dir)
        calls = HubCalls().install(monkeypatch)
        args = tiny_grpo_config(
            output_dir,
            max_completion_length=8,
            learning_rate=1e-4,
            report_to=["wandb", "trackio"],
            log_completions=True,
            push_to_hub=True,
            hub_model_id=HUB_REPO,
        )
        trainer = TrustGRPOTrainer(
            model=str(tiny_vlm_dir),
            reward_funcs=[parity_outcome],
            thinking_judge=AdversarialJudge(),
            args=args,
            train_dataset=load_from_disk(str(synthetic_data_dir))["train"],
            processing_class=AutoProcessor.from_pretrained(tiny_vlm_dir, padding_side="left"),
        )
        trainer.train()
        # trackio's callback copies the dashboard to a Hub Space when the model is pushed (a network call that needs
        # a token): not what this test is about.
        from transformers.integrations import TrackioCallback

        trainer.remove_callback(TrackioCallback)
        trainer.push_to_hub(dataset_name=DATASET_ID, tags=["sophia-trl", "trust-grpo"])
        import wandb

        wandb.finish()  # trackio's callback already finished its run at the end of training
    torch.set_num_threads(threads)
    return trainer, output_dir, wandb_dir, trackio_dir, calls
