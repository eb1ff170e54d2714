"""Datasets in and out: what the recipes load and check, and the shared steps of the converters in `data_prep/`.

- `loading`: a `save_to_disk` folder, a data file or a Hub id as a dataset; the rows of data files one by one.
- `images`: each row's image exists, opens and is within the pixel limit (`check_images` runs before training).
- `conversion`: converting release rows with bad ones named or skipped, the test split, saving, the shared options.
- `judge_rows`: the judge data a thinking reward model trains on, read whatever its column names.
- `policy_prompts`: the `prompt` column rebuilt as a named policy prompt (`policy_prompt` of `recipes/grpo.py`).

The recipes import what they use from here:

```python
from sophia_trl.data import apply_policy_prompt, check_images, load_train_test_splits
```
"""

from .images import check_images
from .loading import load_dataset_from_name_or_path, load_train_test_splits
from .policy_prompts import apply_policy_prompt

__all__ = ["apply_policy_prompt", "check_images", "load_dataset_from_name_or_path", "load_train_test_splits"]
