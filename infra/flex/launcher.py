"""Flex Template entry: turn Dataflow's `--name=value` template parameters into the job's own command line.

Dataflow's launcher runs FLEX_TEMPLATE_PYTHON_PY_FILE (preprocess_main.py or separate_main.py) with every
template parameter as `--name=value`. Most map one to one; two kinds need translating:
  positional arguments (separate's INPUTs)   --inputs=a,b      ->  a b
  on/off flags (store_true, e.g. --force)    --force=true      ->  --force      (false: left out)
Then the job's `run()` builds the pipeline; inside a template launch, DataflowRunner writes the job
file instead of waiting for the job, so `run()` returns as soon as the graph is handed over.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

JOBS = {"preprocess": "beam_jobs.preprocess", "separate": "beam_jobs.separate"}
WORKER_IMAGE_ENV = "ATSEP_WORKER_IMAGE"  # set in infra/Dockerfile: workers run the launcher's own image


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__("parser captured")
        self.parser = parser


def job_parser(job: str) -> argparse.ArgumentParser:
    """The job's real argparse parser: its `build_parser()` if it has one, else the parser that its
    `parse_args` builds, caught on its way to parsing (so no option list is ever copied by hand)."""
    module = importlib.import_module(JOBS[job])
    if hasattr(module, "build_parser"):
        return module.build_parser()
    original = argparse.ArgumentParser.parse_known_args

    def capture(self, *args, **kwargs):
        raise _Captured(self)

    argparse.ArgumentParser.parse_known_args = capture
    try:
        module.parse_args([])
    except _Captured as captured:
        return captured.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original
    raise RuntimeError(f"{JOBS[job]}.parse_args built no argparse parser")


def job_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The job's own options, without --help."""
    return [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]


def parameter_name(action: argparse.Action) -> str:
    """The template parameter's name: the long option without dashes, or a positional's dest."""
    longs = [option for option in action.option_strings if option.startswith("--")]
    return longs[0][2:] if longs else action.dest


def translate(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Template parameters (`--name=value`) -> the job's command line; other options pass unchanged."""
    kinds = {parameter_name(action): action for action in job_actions(parser)}
    positional, rest = [], []
    for arg in argv:
        name, equals, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        action = kinds.get(name) if equals else None
        if action is not None and not action.option_strings:
            positional += [item.strip() for item in value.split(",") if item.strip()]
        elif action is not None and isinstance(action, argparse._StoreTrueAction):
            if value.strip().lower() not in ("true", "false"):
                raise SystemExit(f"--{name} takes true or false, not {value!r}")
            rest += [f"--{name}"] if value.strip().lower() == "true" else []
        else:
            rest.append(arg)
    return positional + rest


def worker_defaults(argv: list[str]) -> list[str]:
    """Workers run this same image and its installed SDK, unless the launch says otherwise."""
    extra = []
    image = os.environ.get(WORKER_IMAGE_ENV)
    if image and not any(arg.startswith("--sdk_container_image") for arg in argv):
        extra.append(f"--sdk_container_image={image}")
    if not any(arg.startswith("--sdk_location") for arg in argv):
        extra.append("--sdk_location=container")
    return argv + extra


def launch(job: str, argv: list[str] | None = None):
    """Run `job` from template parameters; returns its PipelineResult."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = worker_defaults(translate(argv, job_parser(job)))
    logging.getLogger(__name__).info("%s %s", JOBS[job], " ".join(command))
    return importlib.import_module(JOBS[job]).run(command)
