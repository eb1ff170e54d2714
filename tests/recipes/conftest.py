import pytest


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory):
    """A small synthetic multimodal dataset (`train` split) saved with `save_to_disk`. Every row has an image: with
    one prompt group per step, a step of a text-only row alone fails in TrustGRPOTrainer (TRL passes a batch of `None`
    images to the processor), which is not what these tests are about."""
    from datasets import DatasetDict

    from sophia_trl.synthetic import make_synthetic_dataset

    path = tmp_path_factory.mktemp("synthetic-data")
    DatasetDict({"train": make_synthetic_dataset(16, seed=0)}).save_to_disk(path)
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
