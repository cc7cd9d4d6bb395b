# Two entry points that do all their own set-up on a fresh machine:
#   make demo   create .venv, install torch and rssm with the video and log extras, run `rssm train`
#               on its default (PlaNet on the built-in point mass)
#   make test   create .venv, install rssm with the dev extras, run the test suite
# Bring your own environment instead with:  make test VENV_BIN=  (uses python3 on PATH).
PYTHON ?= python3
VENV ?= .venv
# Installed first so that no later requirement pulls a CUDA build of torch.
TORCH_SPEC ?= torch==2.13.0
VENV_BIN ?= $(VENV)/bin/
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo test bench lint clean

$(VENV)/.torch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install "$(TORCH_SPEC)"
	touch $@

# The demo needs rssm and what its run writes (videos, TensorBoard events); the tests need every
# optional suite and tool (the dev extra).
$(VENV)/.installed-demo: $(VENV)/.torch
	$(VENV)/bin/python -m pip install -e ".[video,log]"
	touch $@

$(VENV)/.installed: $(VENV)/.torch
	$(VENV)/bin/python -m pip install -e ".[dev]"
	touch $@

demo: $(if $(VENV_BIN),$(VENV)/.installed-demo)
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV_BIN)rssm train

test: $(if $(VENV_BIN),$(VENV)/.installed)
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV_BIN)python -m pytest -q $(PYTEST_ARGS)

bench: $(if $(VENV_BIN),$(VENV)/.installed)
	$(VENV_BIN)python benchmarks/world_model.py --json bench_world_model.json
	$(VENV_BIN)python benchmarks/train_step.py --json bench_train_step.json
	$(VENV_BIN)python benchmarks/planning.py --json bench_planning.json

lint: $(if $(VENV_BIN),$(VENV)/.installed)
	$(VENV_BIN)ruff check rssm tests benchmarks examples
	$(VENV_BIN)ruff format --check rssm tests benchmarks examples

clean:
	rm -rf $(VENV) runs .pytest_cache
