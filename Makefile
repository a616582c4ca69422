# avfusion — `make demo` runs the main job on the embedded defaults, `make test` runs ruff and pytest.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build by default; GPU machines: `make TORCH_SPEC='torch' setup` (or any pip spec / index).
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= data/demo
MLFLOW_UI_PORT ?= 5000
# One name per `make demo` run: the search's MLflow experiment and its ensemble folder.
DEMO_NAME := demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup demo test test-fast test-lowest test-encoders lint ui dashboard clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	@# Nothing installed after it replaces the torch installed (a CPU wheel here, yours on a GPU).
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/torch-pin.txt
	$(PY) -m pip install -q -e ".[dev,encoders-audio]" -c $(VENV)/torch-pin.txt
	@touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m feature_store synth --out $(DEMO_DIR) --skip-existing
	$(PY) -m feature_store inspect $(DEMO_DIR)
	MLFLOW_UI_PORT=$(MLFLOW_UI_PORT) $(PY) -m search run conf/search/demo.yaml --set stores.root=$(DEMO_DIR) --set name=$(DEMO_NAME) $(DEMO_ARGS)
	$(PY) -m ensembling build --experiment $(DEMO_NAME) --class-weights auto --out ensembles/$(DEMO_NAME)
	$(PY) -m feature_store inspect $(DEMO_DIR) --oracle
	@echo "Open the MLflow UI: make ui, then the address the search printed (experiment $(DEMO_NAME))"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest -q --durations=15 -m "not torchvision"
	$(MAKE) test-encoders

# The inner loop while working: ruff and every test not marked slow (no search, cluster or build
# end to end; a few minutes on 2 cores).
test-fast: lint
	$(VENV)/bin/pytest -q -m "not slow" --durations=10

# A venv holding only what differs from .venv sees .venv's packages after its own (a .pth file).
layer_over_main = $(1)/bin/python -c "import site, sys; open(site.getsitepackages()[0] + '/avfusion-main.pth', 'w').write(f'import site; site.addsitedir({sys.argv[1]!r})\\n')" "$$($(PY) -c 'import site; print(site.getsitepackages()[0])')"

# The search tests on the lowest Ray, Optuna and MLflow pyproject.toml allows (.ci/lowest.py reads
# them from it): a venv holding only those (and .ci/lowest-era.txt's caps on their own dependencies)
# layered over the main venv, so torch and the rest are not installed twice.
LOWEST_VENV ?= .venv-lowest
LOWEST_TESTS ?= tests/test_search.py -k "pruned or restored or told_twice or start_points or study_lives or records_every_trial or status_prints or ensembling_builds"

test-lowest: setup
	@test -x $(LOWEST_VENV)/bin/python || $(PYTHON) -m venv $(LOWEST_VENV)
	$(call layer_over_main,$(LOWEST_VENV))
	$(LOWEST_VENV)/bin/python -m pip install -q $$($(PY) .ci/lowest.py) -c .ci/lowest-era.txt
	$(LOWEST_VENV)/bin/python .ci/lowest.py --check
	$(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS)

# open_clip and timm (the CLIP and HSEmotion encoders) import torchvision, and PyPI's torchvision
# wheels are CUDA builds that load only beside PyPI's CUDA torch (which runs on a CPU as well): a
# CPU torch, as .venv holds here, cannot import them. Their tests (marked `torchvision`) run in a
# venv holding only that torch and torchvision, layered over .venv for everything else, as
# test-lowest is. A GPU machine's own torch has its torchvision: there the whole suite runs in .venv.
ENCODERS_VENV ?= .venv-encoders

test-encoders: setup
	@test -x $(ENCODERS_VENV)/bin/python || $(PYTHON) -m venv $(ENCODERS_VENV)
	$(call layer_over_main,$(ENCODERS_VENV))
	@version=$$($(PY) -c "import torch; print(torch.__version__.split('+')[0])"); \
	$(ENCODERS_VENV)/bin/python -c "import torchvision" 2>/dev/null || \
	$(ENCODERS_VENV)/bin/python -m pip install -q "torch==$$version,!=$$version+cpu" torchvision \
	    "open_clip_torch>=3.3" "timm>=1.0.31"
	$(ENCODERS_VENV)/bin/python -m pytest -q -p no:cacheprovider -m torchvision

# The UI needs MLflow alone: the project's venv when it exists, else a small one with only MLflow.
UI_VENV ?= .venv-ui
UI_MLFLOW := $(if $(wildcard $(VENV)/bin/mlflow),$(VENV)/bin/mlflow,$(UI_VENV)/bin/mlflow)

$(UI_VENV)/bin/mlflow:
	@test -x $(UI_VENV)/bin/python || $(PYTHON) -m venv $(UI_VENV)
	$(UI_VENV)/bin/python -m pip install -q "mlflow>=2.10"

ui: $(UI_MLFLOW)
	$(UI_MLFLOW) ui --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root ./mlruns/artifacts --host 127.0.0.1 --port $(MLFLOW_UI_PORT)

# Optuna Dashboard on the searches' studies (search.study: mlruns/optuna.db beside the default
# tracking database), live while a search runs: the project's venv when it has it, else a small
# one with only optuna-dashboard. Another study database: make dashboard OPTUNA_STORAGE=URL
# (PostgreSQL: the dashboard's venv also needs `psycopg[binary]`, the password in PGPASSWORD).
DASHBOARD_VENV ?= .venv-dashboard
DASHBOARD_PORT ?= 8080
OPTUNA_STORAGE ?= sqlite:///mlruns/optuna.db
DASHBOARD := $(if $(wildcard $(VENV)/bin/optuna-dashboard),$(VENV)/bin/optuna-dashboard,$(DASHBOARD_VENV)/bin/optuna-dashboard)

$(DASHBOARD_VENV)/bin/optuna-dashboard:
	@test -x $(DASHBOARD_VENV)/bin/python || $(PYTHON) -m venv $(DASHBOARD_VENV)
	$(DASHBOARD_VENV)/bin/python -m pip install -q optuna-dashboard

# optuna-dashboard opens a database without creating Optuna's tables: before the first search,
# Optuna creates them (an empty study list rather than an error).
dashboard: $(DASHBOARD)
	@mkdir -p mlruns
	@$(dir $(DASHBOARD))python -c "import sys, optuna; optuna.storages.RDBStorage(sys.argv[1])" "$(OPTUNA_STORAGE)"
	$(DASHBOARD) --host 127.0.0.1 --port $(DASHBOARD_PORT) $(OPTUNA_STORAGE)

clean:
	rm -rf $(VENV) $(UI_VENV) $(DASHBOARD_VENV) $(LOWEST_VENV) .pytest_cache .ruff_cache
