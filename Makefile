# Quick start:  make demo   (set up .venv, run the chapter end to end: report/report.html)
#               make test   (set up .venv, run the tests)
# Offline machines: point DIGITLEARN_MIRROR at a folder holding the dataset files,
# e.g.  DIGITLEARN_MIRROR=../shared/datasets make demo

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test notebook lint bench mutation clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,export,tensorboard]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/digitlearn reproduce --out report

# one worker per core (pytest-xdist), each with one PyTorch thread (tests/conftest.py): many tests
# wait on a process, a socket or a deadline, and the others' work fills the time
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile

notebook: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[notebook]'
	$(BIN)/jupyter lab notebooks/chapter4.ipynb

mutation: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[mutation]'
	$(BIN)/python tools/mutation.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples tools
	$(BIN)/ruff format --check src tests bench examples tools

bench: $(STAMP)
	$(BIN)/python bench/load_data.py
	$(BIN)/python bench/train_loop.py
	$(BIN)/python bench/speed_options.py
	$(BIN)/python bench/time_to_accuracy.py --best
	$(BIN)/python bench/predict.py
	$(BIN)/python bench/reproduce.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/threads.py
	$(BIN)/python bench/distributed.py

# bench/versus.py: digitlearn against fastai and PyTorch's MNIST example, side by side. fastai is
# never a dependency of digitlearn, so it goes into a venv of its own, with the same pinned torch.
BENCH_VENV := .venv-bench
.PHONY: bench-versus

$(BENCH_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -c constraints.txt -e . fastai
	touch $@

bench-versus: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/versus.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache mutants
