import importlib.util
from pathlib import Path

import pytest

DATA_PREP = Path(__file__).resolve().parents[2] / "data_prep"


@pytest.fixture(scope="session")
def load_script():
    """Import a `data_prep/<name>.py` script as a module (the folder is not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"data_prep_{name}", DATA_PREP / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
