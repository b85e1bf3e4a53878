"""Scheduled retraining on Vertex AI Pipelines (KFP v2), the cloud twin of `atsep retrain run`:

    check (`atsep retrain check`) -> preprocess (Dataflow Flex Template) -> wait
        -> train (Vertex AI custom job: the CPU image, or the GPU image on an L4)
        -> evaluate (`atsep retrain evaluate`) -> promote only if better (`atsep retrain promote`)

    python -m infra.pipelines.retrain --image IMAGE [--gpu [--train_image GPU_IMAGE]] --output build/retrain.json

Every step but GPU training runs the project's image (infra/Dockerfile target `worker`); GPU training runs
its CUDA twin (`worker-gpu`, tagged atsep-gpu). Versions are named after the pipeline job, so each scheduled
run adds gs://.../registry/versions/<job name>/ and only the gate moves `current`.

Placeholders are the documented ones only: dsl.PIPELINE_JOB_NAME_PLACEHOLDER passed as a task argument, and
dsl.ConcatPlaceholder over a container component's own inputs. Paths derived from the bucket (records, the
config's FUSE path, the Flex Template's parameters) are pipeline parameters that infra/cloud.py fills in,
never f-strings over pipeline parameters.
"""

# no `from __future__ import annotations`: KFP reads the components' annotations as real types
import argparse
import sys

from kfp import compiler, dsl

from atsep.retrain import DEFAULT_MIN_IMPROVEMENT, DEFAULT_MIN_OVER_MIXTURE, HELD_OUT_SPLITS

NAME = "atsep-retrain"
CPU = {"machine_type": "n1-standard-8", "accelerator_type": "", "accelerator_count": 0}
GPU = {"machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4", "accelerator_count": 1}
VERSION = dsl.PIPELINE_JOB_NAME_PLACEHOLDER  # unique per run, and a valid folder name
RETRAIN = ["python", "-m", "atsep.retrain"]


def gpu_image(image: str) -> str:
    """REGION-docker.pkg.dev/PROJECT/atsep/atsep:TAG -> .../atsep/atsep-gpu:TAG (infra/cloud.py's naming)."""
    folder, _, name = image.rpartition("/")
    repository, colon, tag = name.partition(":")
    if repository != "atsep":
        raise ValueError(f"cannot derive the GPU image from {image!r}: name it with --train_image")
    return f"{folder}/atsep-gpu{colon}{tag}"


def build_pipeline(image: str, gpu: bool = False, train_image: str = ""):
    """The pipeline function for one image; `gpu` picks the training machine and (by default) its image."""
    from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component
    from google_cloud_pipeline_components.v1.dataflow import DataflowFlexTemplateJobOp
    from google_cloud_pipeline_components.v1.wait_gcp_resources import WaitGcpResourcesOp

    trainer_image = train_image or (gpu_image(image) if gpu else image)

    @dsl.container_component
    def check(songs: str, registry: str, config: str, split: str):
        return dsl.ContainerSpec(image=image, command=[*RETRAIN, "check"], args=[
            "--songs", songs, "--registry", registry, "--config", config, "--split", split])

    @dsl.container_component
    def train(records: str, registry: str, work: str, version: str, config: str, strategy: str):
        return dsl.ContainerSpec(image=trainer_image, command=["python", "-m", "trainer.task"], args=[
            "--data", records, "--config", config, "--strategy", strategy,
            "--model_dir", dsl.ConcatPlaceholder([registry, "/versions/", version, "/model"]),
            "--checkpoint_dir", dsl.ConcatPlaceholder([work, "/", version, "/checkpoints"]),
            "--tensorboard_dir", dsl.ConcatPlaceholder([work, "/", version, "/logs"]),
            "--data_description", dsl.ConcatPlaceholder(["scheduled retrain ", version, " from ", records])])

    @dsl.container_component
    def evaluate(registry: str, version: str, songs: str, split: str):
        return dsl.ContainerSpec(image=image, command=[*RETRAIN, "evaluate"], args=[
            "--registry", registry, "--version", version, "--songs", songs, "--split", split])

    @dsl.container_component
    def promote(registry: str, version: str, min_improvement: float, min_over_mixture: float):
        # a kept model is a normal outcome of a scheduled run, not a failed run: decision.json tells
        return dsl.ContainerSpec(image=image, command=[*RETRAIN, "promote"], args=[
            "--registry", registry, "--version", version, "--min_improvement", min_improvement,
            "--min_over_mixture", min_over_mixture, "--kept_exit_code", "0"])

    machine = GPU if gpu else CPU
    train_job = create_custom_training_job_from_component(
        train, display_name="atsep-train", machine_type=machine["machine_type"],
        accelerator_type=machine["accelerator_type"],
        **({"accelerator_count": machine["accelerator_count"]} if gpu else {}))

    @dsl.pipeline(name=NAME, description=__doc__.split("\n")[0])
    def retrain(project: str, region: str, songs: str, records: str, work: str, registry: str,
                config: str, trainer_config: str, preprocess_template: str, preprocess_parameters: dict,
                dataflow_temp: str, dataflow_service_account: str, trainer_service_account: str,
                split: str = HELD_OUT_SPLITS[0], min_improvement: float = DEFAULT_MIN_IMPROVEMENT,
                min_over_mixture: float = DEFAULT_MIN_OVER_MIXTURE, max_dataflow_workers: int = 20):
        checked = check(songs=songs, registry=registry, config=config, split=split).set_display_name("check")
        preprocess = DataflowFlexTemplateJobOp(
            project=project, location=region, container_spec_gcs_path=preprocess_template,
            job_name="atsep-preprocess", parameters=preprocess_parameters,
            service_account_email=dataflow_service_account, temp_location=dataflow_temp,
            max_workers=max_dataflow_workers, sdk_container_image=image).after(checked).set_display_name(
            "preprocess")
        wait = WaitGcpResourcesOp(gcp_resources=preprocess.outputs["gcp_resources"]).set_display_name(
            "preprocess-wait")
        # the trainer reads its config through Vertex AI's Cloud Storage FUSE mount (trainer_config: /gcs/...)
        trained = train_job(project=project, location=region, service_account=trainer_service_account,
                            records=records, registry=registry, work=work, version=VERSION, config=trainer_config,
                            strategy="mirrored" if gpu else "default").after(wait).set_display_name("train")
        scored = (evaluate(registry=registry, version=VERSION, songs=songs, split=split).after(trained)
                  .set_display_name("evaluate").set_cpu_limit("8").set_memory_limit("32G"))
        promote(registry=registry, version=VERSION, min_improvement=min_improvement,
                min_over_mixture=min_over_mixture).after(scored).set_display_name("promote")

    return retrain


def compile_pipeline(image: str, output: str, gpu: bool = False, train_image: str = "") -> str:
    compiler.Compiler().compile(build_pipeline(image, gpu, train_image), output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.pipelines.retrain", description=__doc__.split("\n")[0])
    parser.add_argument("--image", required=True, help="REGION-docker.pkg.dev/PROJECT/atsep/atsep:TAG")
    parser.add_argument("--gpu", action="store_true", help=f"train on {GPU['machine_type']} + {GPU['accelerator_type']}")
    parser.add_argument("--train_image", default="",
                        help="the training step's image (default: --image, or its atsep-gpu twin with --gpu)")
    parser.add_argument("--output", default="build/retrain.json", help="compiled pipeline spec (JSON or YAML)")
    args = parser.parse_args(argv)
    print(compile_pipeline(args.image, args.output, args.gpu, args.train_image))
    return 0


if __name__ == "__main__":
    sys.exit(main())
