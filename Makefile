# The two entry points of the course. Both create the virtual environment when it is missing.
#   make lab    install if needed, copy new notebooks into work/ (never overwriting yours), start JupyterLab
#   make test   install if needed, run the whole test suite (library, notebooks, grading round trip, CLI)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Rebuilt when the dependencies change; pip resolves a matching torch/torchvision pair from the registry.
STAMP  := $(VENV)/.nstlab-installed

.PHONY: lab test notebooks clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,deploy]'
	@# JupyterLab would otherwise offer to fetch news from the internet at every start.
	$(BIN)/jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" >/dev/null
	@touch $(STAMP)

lab: $(STAMP)
	$(BIN)/nstlab lab

test: $(STAMP)
	$(BIN)/ruff check nstlab tests benchmarks course/nbgrader_config.py
	$(BIN)/python -m pytest

# For course authors: rebuild solutions/ from course/source/ and the student release in notebooks/.
notebooks: $(STAMP)
	$(BIN)/nstlab course generate

clean-venv:
	rm -rf $(VENV)
