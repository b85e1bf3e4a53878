# The one command surface: README and CI call these targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export TF_CPP_MIN_LOG_LEVEL := 2

SONGS ?= examples/slow_motion_dream.mp3
MODEL ?= model/bundled
DATA ?= data/musdb-synth
RECORDS ?= data/records
TRAINED ?= models/trained
MUSDB7 ?= ../shared/data/musdb18-7

include infra/cloud.mk

WHEEL := dist/audio_track_separator-0.1.0-py3-none-any.whl

.PHONY: setup wheel browser demo test reliability bench generate preprocess train separate evaluate default-model clean

# the system packages: ffmpeg, and the font that draws CJK track names in plots (beam_jobs/plots.py)
APT_MISSING := $(if $(shell command -v ffmpeg),,ffmpeg) \
	$(if $(wildcard /usr/share/fonts/truetype/wqy/wqy-microhei.ttc),,fonts-wqy-microhei)

$(STAMP): requirements.txt requirements.lock requirements-test.txt setup.py Makefile
	@[ -z "$(strip $(APT_MISSING))" ] || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_MISSING); }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q -c requirements.lock -r requirements.txt -r requirements-test.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)

## The wheel the cloud image installs: every package, the bundled model as package data (see infra/Dockerfile).
wheel: setup
	rm -rf dist build/lib build/bdist.*  # a stale build/lib would carry deleted modules into the wheel
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w dist .
	@ls $(WHEEL)

## Headless Chromium and its driver, for the tests that check the HTML reports in a real browser.
browser:
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

## The main job on the embedded default: separate the bundled example with the bundled model.
demo: setup
	$(BIN)/atsep separate $(SONGS) --output out/demo

test: setup browser
	$(BIN)/python -m pytest

## Hostile inputs, storage faults, crashes: prints the table of cases and outcomes (also out/reliability.md)
reliability: setup
	mkdir -p out && RELIABILITY_TABLE=out/reliability.md $(BIN)/python -m pytest tests/reliability -q -p no:randomly

## Separation speed side by side: this project, its fixed-mask floor, Spleeter 2.4.2 (docs/performance.md)
bench: setup
	PYTHONPATH=. $(BIN)/python bench/separate.py --onednn-off

generate: setup
	$(BIN)/atsep generate --output $(DATA)

$(DATA): ; $(MAKE) generate

preprocess: setup | $(DATA)
	$(BIN)/atsep preprocess --input $(DATA) --output $(RECORDS)

train: setup
	$(BIN)/atsep train --data $(RECORDS) --model_dir $(TRAINED)

separate: setup
	$(BIN)/atsep separate $(SONGS) --output out/separate --model_dir $(TRAINED)

evaluate: setup
	$(BIN)/atsep evaluate $(MUSDB7) --split valid --model_dir $(MODEL) --output out/eval

## Rebuild the bundled model from the MUSDB18-7 previews (research-only terms: see its MODEL_CARD.md).
# All 80 epochs (--patience 80: no early stop); the export is the mean of the last 8 epochs' weights.
default-model: setup
	rm -rf $(MODEL).work  # start afresh: a leftover checkpoint folder would resume an older run
	$(BIN)/atsep preprocess --input $(MUSDB7) --output data/musdb18-7-records
	$(BIN)/atsep train --data data/musdb18-7-records --model_dir $(MODEL) --config configs/default-model.json --patience 80 \
		--data_description "MUSDB18-7: 7-second previews of the 80 MUSDB18 training songs (14 validation songs held out)"

clean:
	rm -rf out data/records $(TRAINED) $(TRAINED).work
