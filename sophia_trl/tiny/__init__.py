"""What the demo, the tests and the learning lab build offline: tiny models, a toy multimodal task and its responses.

- `models`: a tiny Qwen2.5-VL (tokenizer, processor, config, checkpoint) and its SFT warm start;
  `python -m sophia_trl.tiny --output_dir DIR` saves one.
- `scenes`: the toy task, rendered scenes of coloured shapes with a checkable question each.
- `responses`: responses to the task with sound or flawed reasoning, scored by their steps, and the judge data and
  SFT rows built from them.

Import from the modules: `scenes` and `responses` load no torch, `models` does.
"""
