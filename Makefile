# dlt_runner — set-up is two commands: `make run` and `make test` (each installs first if needed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch: an importable torch in the venv is left alone. Otherwise, without an NVIDIA GPU a CPU
# build is installed in its own pip call (so nothing pulls a multi-GB CUDA build); with one,
# $(TORCH) is installed. GPU users can name theirs, e.g.
#   make install TORCH="torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124"
TORCH ?= torch
TORCH_CPU ?= torch==2.13.0+cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
EXTRAS ?= dev,sweep,slurm
ARGS ?=

.PHONY: install run test test-fast claims bench gpu-check lint clean browser

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "torch $$($(BIN)/python -c 'import torch; print(torch.__version__)') already installed: left alone"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/pip install $(TORCH); \
	else \
		echo "no NVIDIA GPU: installing a CPU build of torch"; \
		$(BIN)/pip install "$(TORCH_CPU)" || $(BIN)/pip install "$(TORCH_CPU)" --index-url $(TORCH_CPU_INDEX); \
	fi
	$(BIN)/pip install -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# The default experiment (IMDE, pendulum, CPU scale). More: make run ARGS="model.integrator=rk4"
run: install
	$(BIN)/dlt-run experiment=imde/pendulum $(ARGS)

# All five test tiers (unit, configs, smoke, runner, claims).
test: install
	$(BIN)/python -m pytest $(ARGS)

# Tiers 1-4 (no claim grids).
test-fast: install
	$(BIN)/python -m pytest -m "not claim" $(ARGS)

claims: install
	$(BIN)/dlt-claims all $(ARGS)

bench: install
	$(BIN)/python -m benchmarks.bench $(ARGS)

# Every CPU-scale experiment on one GPU (32-true, bf16-mixed where allowed), DDP and FSDP, vs
# the CPU run, into GPU.md; exits 0 saying so on a machine without a GPU.
gpu-check: install
	$(BIN)/python -m benchmarks.gpu_check $(ARGS)

lint: install
	$(BIN)/ruff check dlt_runner tests benchmarks
	$(BIN)/ruff format --check dlt_runner tests benchmarks

# Headless Chromium from Debian's packages, for the report.html browser test (needs root).
browser:
	apt-get update && apt-get install -y chromium

clean:
	rm -rf outputs .cache .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
