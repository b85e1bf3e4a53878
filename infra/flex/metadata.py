"""Flex Template metadata (`<job>.json` beside this file) generated from the jobs' real argparse parsers.

    python -m infra.flex.metadata --write     # after a job gains, loses or changes an option
    python -m infra.flex.metadata --check     # exit 1 if a file is out of date (tests do the same)

Every job option becomes one template parameter with a label, help text, isOptional, and regexes that
Dataflow checks before it launches anything. Paths must be gs:// (workers cannot see the launcher's
disk); leaving model_dir out uses the model bundled in the installed package, which the image carries.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from infra.flex.launcher import JOBS, job_actions, job_parser, parameter_name

HERE = Path(__file__).resolve().parent
GCS = r"gs://[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9](/.*)?"
REGEXES = {  # per parameter name; the rest are derived from the option's type and choices
    "input": [f"^{GCS}$"], "output": [f"^{GCS}$"], "input_list": [f"^{GCS}$"],
    "config": [f"^({GCS})?$"],  # empty: the default config (the retrain pipeline always passes it)
    "inputs": [r"^gs://[^,\s]+(,gs://[^,\s]+)*$"],
    "model_dir": [f"^{GCS}$"],
    "bitrate": [r"^[0-9]{2,3}k$"],
    "filename": [r"^[^/\s][^\s]*\{stem\}[^\s]*$"],
}
TITLES = {"preprocess": "Audio-Track Separator: MUSDB18 songs to training TFRecords",
          "separate": "Audio-Track Separator: separate a catalogue into stems"}


def regexes(action: argparse.Action) -> list[str]:
    name = parameter_name(action)
    if name in REGEXES:
        return REGEXES[name]
    if isinstance(action, argparse._StoreTrueAction):
        return ["^(true|false)$"]
    if action.choices:
        return ["^(" + "|".join(re.escape(str(choice)) for choice in action.choices) + ")$"]
    if action.type is int:
        return ["^[0-9]+$"]
    if action.type is float:
        return [r"^[0-9]+(\.[0-9]+)?$"]
    return [r"^\S+$"]


def is_optional(action: argparse.Action) -> bool:
    return not action.required or action.nargs in ("*", "?")


def help_text(action: argparse.Action) -> str:
    text = (action.help or parameter_name(action)) % {"default": action.default, "prog": ""}
    if not action.option_strings:
        text += " (comma-separated)"
    elif action.default not in (None, "", False) and "default" not in text:
        text += f" (default: {action.default})"
    return text


def parameter(action: argparse.Action) -> dict:
    name = parameter_name(action)
    return {"name": name, "label": name.replace("_", " ").capitalize(), "helpText": help_text(action),
            "isOptional": is_optional(action), "regexes": regexes(action)}


def metadata(job: str) -> dict:
    parser = job_parser(job)
    return {"name": f"atsep-{job}", "description": TITLES[job] + f" ({JOBS[job]}).",
            "parameters": [parameter(action) for action in job_actions(parser)]}


def path(job: str) -> Path:
    return HERE / f"{job}.json"


def render(job: str) -> str:
    return json.dumps(metadata(job), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.flex.metadata", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the metadata files")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs from its parser")
    args = parser.parse_args(argv)
    stale = [job for job in JOBS if not path(job).exists() or path(job).read_text() != render(job)]
    if args.write:
        for job in JOBS:
            path(job).write_text(render(job))
        print("wrote " + ", ".join(str(path(job)) for job in JOBS))
        return 0
    for job in stale:
        print(f"{path(job)} is out of date: python -m infra.flex.metadata --write", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
