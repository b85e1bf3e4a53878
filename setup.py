"""Audio-Track Separator: `pip install .` gives the `atsep` command; Dataflow stages it via --setup_file."""
from pathlib import Path

from setuptools import find_packages, setup


def pinned(name: str) -> list[str]:
    lines = Path(__file__).with_name(name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-"))]


setup(
    name="audio-track-separator",
    version="0.1.0",
    description="Split songs into vocals, drums and the rest, at catalogue scale (Keras U-Net + Apache Beam)",
    python_requires=">=3.11",
    packages=find_packages(include=["atsep", "atsep.*", "audio", "audio.*", "common", "common.*", "model", "model.*",
                                    "beam_jobs", "beam_jobs.*", "trainer", "trainer.*", "reports", "reports.*",
                                    "infra", "infra.flex", "infra.pipelines"]),
    # the bundled default model travels as package data, so `atsep separate SONG -o OUT` works from any folder
    package_data={"model": ["bundled/*", "bundled/saved_model/*", "bundled/saved_model/variables/*"]},
    include_package_data=False,
    install_requires=pinned("requirements.txt"),
    entry_points={"console_scripts": ["atsep=atsep.cli:run"]},
)
