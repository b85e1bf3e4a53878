# Cloud targets (included by the Makefile): every one prints the exact commands it runs; DRY_RUN=1 only prints
# (and writes the rendered specs under build/). Nothing here is needed for local work or the tests.
#   make image flex-templates stage-config PROJECT=p REGION=europe-west1 BUCKET=b TAG=v1
#   make dataflow-preprocess | dataflow-separate | vertex-train [GPU=1] | retrain-schedule [GPU=1 CRON=...]
#   make retrain                 # the same chain locally: DirectRunner (FnApiRunner) + the local trainer
# Extra job parameters go in ARGS, e.g. ARGS='inputs=gs://b/new/*.mp3 dataflow.worker-machine-type=n1-highmem-4'.
PROJECT ?=
REGION ?= europe-west1
BUCKET ?=
TAG ?= latest
CRON ?= TZ=Etc/UTC 0 3 * * 1
ARGS ?=
REGISTRY ?= models/registry
RETRAIN_CONFIG ?= configs/retrain-synth.json
CLOUD_PY = $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
CLOUD = PYTHONPATH=. $(CLOUD_PY) -m infra.cloud
CLOUD_FLAGS = --project "$(PROJECT)" --region "$(REGION)" --bucket "$(BUCKET)" --tag "$(TAG)" \
	$(if $(filter 1,$(DRY_RUN)),--dry_run) $(if $(filter 1,$(GPU)),--gpu)

.PHONY: image flex-templates stage-config dataflow-preprocess dataflow-separate vertex-train retrain-schedule \
	retrain flex-metadata cloud-vars

cloud-vars:
	@[ -n "$(PROJECT)" ] && [ -n "$(BUCKET)" ] || { echo "set PROJECT and BUCKET (and REGION, default $(REGION))" >&2; exit 2; }

## Build and push the worker, GPU and Flex Template launcher images (one Dockerfile, shared layers) from the wheel.
image: cloud-vars wheel
	$(CLOUD) image $(CLOUD_FLAGS) $(ARGS)

## Store the Flex Template specs for preprocess and separate under gs://BUCKET/templates/.
flex-templates: cloud-vars
	$(CLOUD) flex-templates $(CLOUD_FLAGS) $(ARGS)

## Copy the training config to gs://BUCKET/configs/retrain.json (ARGS='config=configs/other.json').
stage-config: cloud-vars
	$(CLOUD) stage-config $(CLOUD_FLAGS) $(ARGS)

## gs://BUCKET/musdb -> gs://BUCKET/records on Dataflow (n2-highmem-4 workers unless MACHINE=...; docs/cloud.md).
dataflow-preprocess: cloud-vars
	$(CLOUD) dataflow-preprocess $(CLOUD_FLAGS) $(if $(MACHINE),dataflow.worker-machine-type=$(MACHINE)) $(ARGS)

## gs://BUCKET/catalogue/* -> gs://BUCKET/stems on Dataflow, with the registry's current model (n2-highcpu-8
## workers unless MACHINE=...: the launcher matches the harness threads to its vCPUs).
dataflow-separate: cloud-vars
	$(CLOUD) dataflow-separate $(CLOUD_FLAGS) $(if $(MACHINE),dataflow.worker-machine-type=$(MACHINE)) $(ARGS)

## Train on Vertex AI from gs://BUCKET/records (GPU=1: one NVIDIA L4, the atsep-gpu image, mixed precision).
vertex-train: cloud-vars
	$(CLOUD) vertex-train $(CLOUD_FLAGS) $(ARGS)

## Compile the retrain pipeline (KFP v2) and create its Vertex AI Pipelines schedule, or update the one of the same
## name in place (CRON, default Mondays 03:00 UTC; ARGS='min_improvement=0.3 ...' sets pipeline parameters).
retrain-schedule: cloud-vars
	$(CLOUD) retrain-schedule $(CLOUD_FLAGS) --cron "$(CRON)" $(ARGS)

## Rewrite infra/flex/*.json from the jobs' parsers after an option changes.
flex-metadata:
	PYTHONPATH=. $(CLOUD_PY) -m infra.flex.metadata --write

## The retrain chain locally: check -> preprocess -> train -> evaluate -> promote-if-better into REGISTRY
## (docs/retraining.md). Either decision ends the target well; `atsep retrain run` alone exits 3 when not promoted.
retrain: setup | $(DATA)
	$(BIN)/atsep retrain run --songs $(DATA) --registry $(REGISTRY) $(if $(RETRAIN_CONFIG),--config $(RETRAIN_CONFIG)) \
		--kept_exit_code 0 $(ARGS)
