# arcscan: every command a user needs. `make demo` runs the main job, `make test` the tests;
# both create the virtual environment (.venv) and install pinned dependencies first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000
FRAMES ?= data/real/train
LABELS ?= data/real/labels.csv
CHECKPOINT ?= models/model.pt
LABEL_PORT ?= 0

.PHONY: help venv tools data train promote rollback mar serve stop demo test test-fast test-k8s bench bench-speed bench-quality loadtest reprocess mlflow-server starter-data lock clean label browser podman images test-images

help:  ## list the targets
	@awk -F':.*## ' '/^[a-z0-9-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	@command -v java >/dev/null || { echo "installing Java 17 (TorchServe's frontend)"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install pinned dependencies

tools:  ## offline deployment-check tools: .tools/ (checkov, kubectl with kustomize) and promtool (Debian's prometheus)
	bash k8s/install-tools.sh

browser:  ## headless Chromium (Debian's) for the labelling page's browser tests; they skip with the reason if it cannot be installed
	@command -v chromium >/dev/null || { echo "installing chromium (browser tests)"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium || echo "chromium could not be installed: the browser tests will skip"; }

data: $(STAMP)  ## fetch the starter dataset (data/) from the DVC remote in dvc-storage/
	$(BIN)/dvc pull --quiet data.dvc

train: data  ## dvc repro: patches -> PNU training -> evaluation -> registration (alias challenger)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

promote: $(STAMP)  ## move alias champion to the challenger if it is better (FORCE=1 to force)
	$(BIN)/arcscan promote $(if $(FORCE),--force)

rollback: $(STAMP)  ## move alias champion back to the previous champion
	$(BIN)/arcscan rollback

mar: $(STAMP)  ## package the registered champion as serving/model-store/arcscan.mar
	$(BIN)/python serving/build_mar.py --alias champion --output serving/model-store

serve: $(STAMP)  ## start TorchServe on 127.0.0.1 (8080 inference, 8081 management, 8082 metrics); waits until READY
	$(BIN)/python serving/serve.py start

stop:  ## stop TorchServe and wait for its JVM and workers to exit
	$(BIN)/python serving/serve.py stop

demo: train promote mar  ## the main job: train, register, promote, serve the champion, stream sample frames, stop
	$(BIN)/python serving/demo.py --output demo-output

test: data tools browser  ## the whole test suite (slow tests included; pulls data/ first: real frames, calibrations)
	$(BIN)/python -m pytest -q

test-fast: data tools browser  ## the test suite without the slow server/pipeline tests
	$(BIN)/python -m pytest -q -m "not slow"

test-k8s: $(STAMP) tools  ## only the offline deployment checks (images, manifests, Prometheus)
	$(BIN)/python -m pytest -q tests/test_k8s.py

podman:  ## podman, buildah, runc, catatonit, debootstrap from Debian and their settings (containers/install-podman.sh)
	bash containers/install-podman.sh

images: podman data  ## build every image with podman, one at a time, from a local Debian base (containers/images.sh; about 25 min cold)
	bash containers/images.sh

test-images: data tools images  ## build the images, then run them: serving pod, training against MLflow, podman kube play (tests/test_images.py)
	ARCSCAN_TEST_IMAGES=1 $(BIN)/python -m pytest -q tests/test_images.py

bench: bench-speed bench-quality  ## both benchmarks

bench-speed: $(STAMP)  ## reference vs fast path, CRF, training time/memory, TorchServe end to end and memory, imagers per server (needs make mar and patches/) -> reports/bench_speed.json; reference vs serving vs archive path, Ray 1 and 2 workers -> reports/bench_archive.json
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/archive_speed.py

bench-quality: train  ## PN vs nnPU vs PNU vs supervised vs no learning, with/without CRF, 3 seeds (~40 min) -> reports/bench_quality.*
	$(BIN)/python benchmarks/quality.py

loadtest: train promote mar  ## 20 imagers at real cadence, 2x and 4x through the stream client and TorchServe, exactly once (~3 min) -> reports/loadtest.json
	$(BIN)/python benchmarks/loadtest.py

label: $(STAMP)  ## the labelling page over FRAMES (default data/real/train) saving to LABELS (data/real/labels.csv); suggestions from CHECKPOINT (models/model.pt, if there) or ALIAS=champion; TOKEN=1 for a token
	$(BIN)/arcscan label $(FRAMES) --labels $(LABELS) --port $(LABEL_PORT) $(if $(TOKEN),--token) \
	  $(if $(ALIAS),--alias $(ALIAS),$(if $(wildcard $(CHECKPOINT)),--checkpoint $(CHECKPOINT)))

reprocess: $(STAMP)  ## reprocess an archive on Ray: ARCHIVE=folder CATALOG=folder [ALIAS=champion] [ADDRESS=ray cluster] [ARGS=--masks ...]
	$(BIN)/arcscan reprocess $(or $(ARCHIVE),$(error ARCHIVE=folder is required)) --output $(or $(CATALOG),$(error CATALOG=folder is required)) \
	  $(if $(ALIAS),--alias $(ALIAS)) $(if $(ADDRESS),--address $(ADDRESS)) $(ARGS)

mlflow-server: $(STAMP)  ## a real MLflow tracking server on 127.0.0.1:$(PORT) (BACKEND=postgresql+psycopg2://... to use PostgreSQL; AUTH=1 for basic auth)
	$(BIN)/arcscan mlflow-server --port $(PORT) $(if $(BACKEND),--backend-store-uri '$(BACKEND)') $(if $(AUTH),--auth)

starter-data: $(STAMP)  ## regenerate the synthetic starter dataset from params.yaml and track it with DVC
	$(BIN)/python training/make_starter_data.py data
	$(BIN)/dvc add --quiet data
	$(BIN)/dvc push --quiet data.dvc

lock: $(STAMP)  ## rewrite requirements.lock from the current environment
	head -2 requirements.lock > requirements.lock.new
	$(BIN)/pip freeze --exclude-editable | grep -v '^arcscan' \
	  | sed -e 's/^torch==/torch===/' -e 's/^torchvision==/torchvision===/' >> requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:  ## remove pipeline outputs and the local MLflow store (not data/ or .venv)
	rm -rf patches models reports/overlays mlflow/store demo-output
