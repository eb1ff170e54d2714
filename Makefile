# sophia-trl: `make demo` runs the tiny end-to-end pipeline on the CPU, `make test` runs the tests.
# Both create .venv first when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
OUT ?= outputs/demo

.PHONY: setup demo test test-slow quality style eval lab lab-sparse lab-rules lab-gamed lab-scenes clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch and torchvision first, as an exact pair: an unpinned torchvision replaces torch.
	$(PIP) install torch==2.14.1 torchvision==0.29.1
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) scripts/demo.py --output_dir $(OUT)

test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m "slow or not slow"

# ruff, then the import contracts of pyproject.toml's [tool.importlinter] (layers of sophia_trl, no cycles).
quality: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

style: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# make eval MODEL=outputs/<run> [BENCH=mathvista,mmstar] [EVAL_OUT=results/eval.json] [DATA="mmmu=PATH mme=PATH"]
# DATA: local copies instead of the Hub, space-separated NAME=PATH (each is passed as --data NAME=PATH).
eval: setup
	$(PY) eval/evaluate.py --model $(MODEL) --benchmark $(or $(BENCH),all) --output $(or $(EVAL_OUT),results/eval.json) \
		$(foreach copy,$(DATA),--data $(copy))

lab: setup
	$(PY) benchmarks/learning_lab.py --output_dir outputs/learning_lab

# The trust rules in the sparse regime (55 runs) and in the default regime (35 runs): docs/learning_lab.md
lab-sparse: setup
	$(PY) benchmarks/learning_lab.py --task sparse --seeds 5 --judges reliable adversarial \
		--arms grpo naive trust_grpo trust_grpo_official reliability reliability_separate --output_dir outputs/lab_sparse

lab-rules: setup
	$(PY) benchmarks/learning_lab.py --seeds 5 --judges reliable adversarial \
		--arms grpo trust_grpo reliability reliability_separate --output_dir outputs/lab_rules

# A judge that can be gamed, the sparse regime: 5 arms, reliable and gamed judges, 5 seeds (45 runs): docs/learning_lab.md
lab-gamed: setup
	$(PY) benchmarks/learning_lab.py --task sparse --seeds 5 --judges reliable gamed \
		--arms grpo trust_grpo posterior_gate reliability_separate length_neutral --output_dir outputs/lab_gamed

# The multimodal check: the tiny VLM on the synthetic scenes, 4 arms x 2 judges x 3 seeds (21 runs): docs/learning_lab.md
lab-scenes: setup
	$(PY) benchmarks/learning_lab.py --task scenes --output_dir outputs/lab_scenes

clean:
	rm -rf outputs .pytest_cache .import_linter_cache .grimp_cache
