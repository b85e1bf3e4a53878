"""Scheduled retraining on Vertex AI Pipelines (KFP v2), the cloud twin of `atsep retrain run`:

    preprocess (Dataflow Flex Template) -> wait -> train (Vertex AI custom job, CPU or GPU)
        -> evaluate (`atsep retrain evaluate`) -> promote only if better (`atsep retrain promote`)

    python -m infra.pipelines.retrain --image IMAGE [--gpu] --output build/retrain.json

Every step runs the project's one image (infra/Dockerfile); versions are named after the pipeline job,
so each scheduled run adds gs://.../registry/versions/<job name>/ and only the gate moves `current`.
"""

# no `from __future__ import annotations`: KFP reads the components' annotations as real types
import argparse
import sys

from kfp import compiler, dsl

NAME = "atsep-retrain"
CPU = {"machine_type": "n1-standard-8", "accelerator_type": "", "accelerator_count": 0}
GPU = {"machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4", "accelerator_count": 1}
VERSION = dsl.PIPELINE_JOB_NAME_PLACEHOLDER  # unique per run, and a valid folder name


def build_pipeline(image: str, gpu: bool = False):
    """The pipeline function for one image; `gpu` picks the training machine."""
    from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component
    from google_cloud_pipeline_components.v1.dataflow import DataflowFlexTemplateJobOp
    from google_cloud_pipeline_components.v1.wait_gcp_resources import WaitGcpResourcesOp

    @dsl.container_component
    def train(records: str, registry: str, work: str, version: str, config: str, strategy: str):
        return dsl.ContainerSpec(image=image, command=["python", "-m", "trainer.task"], args=[
            "--data", records, "--config", config, "--strategy", strategy,
            "--model_dir", dsl.ConcatPlaceholder([registry, "/versions/", version, "/model"]),
            "--checkpoint_dir", dsl.ConcatPlaceholder([work, "/", version, "/checkpoints"]),
            "--tensorboard_dir", dsl.ConcatPlaceholder([work, "/", version, "/logs"]),
            "--data_description", dsl.ConcatPlaceholder(["scheduled retrain ", version, " from ", records])])

    @dsl.container_component
    def evaluate(registry: str, version: str, songs: str, split: str):
        return dsl.ContainerSpec(image=image, command=["python", "-m", "atsep.retrain", "evaluate"], args=[
            "--registry", registry, "--version", version, "--songs", songs, "--split", split])

    @dsl.container_component
    def promote(registry: str, version: str, min_improvement: float):
        return dsl.ContainerSpec(image=image, command=["python", "-m", "atsep.retrain", "promote"], args=[
            "--registry", registry, "--version", version, "--min_improvement", min_improvement])

    machine = GPU if gpu else CPU
    train_job = create_custom_training_job_from_component(
        train, display_name="atsep-train", machine_type=machine["machine_type"],
        accelerator_type=machine["accelerator_type"],
        **({"accelerator_count": machine["accelerator_count"]} if gpu else {}))

    @dsl.pipeline(name=NAME, description=__doc__.split("\n")[0])
    def retrain(project: str, region: str, bucket: str, songs: str, work: str, registry: str, templates: str,
                dataflow_service_account: str, trainer_service_account: str,
                config_object: str = "configs/retrain.json", split: str = "valid",
                min_improvement: float = 0.0, max_dataflow_workers: int = 20):
        records = f"{work}/records"
        # the trainer reads its config through Vertex AI's Cloud Storage FUSE mount (/gcs/BUCKET/...)
        config, trainer_config = f"gs://{bucket}/{config_object}", f"/gcs/{bucket}/{config_object}"
        preprocess = DataflowFlexTemplateJobOp(
            project=project, location=region, container_spec_gcs_path=f"{templates}/preprocess.json",
            job_name="atsep-preprocess", parameters={"input": songs, "output": records, "config": config},
            service_account_email=dataflow_service_account, temp_location=f"{work}/dataflow-tmp",
            max_workers=max_dataflow_workers, sdk_container_image=image).set_display_name("preprocess")
        wait = WaitGcpResourcesOp(gcp_resources=preprocess.outputs["gcp_resources"]).set_display_name(
            "preprocess-wait")
        trained = train_job(project=project, location=region, service_account=trainer_service_account,
                            records=records, registry=registry, work=work, version=VERSION, config=trainer_config,
                            strategy="mirrored" if gpu else "default").after(wait).set_display_name("train")
        scored = (evaluate(registry=registry, version=VERSION, songs=songs, split=split).after(trained)
                  .set_display_name("evaluate").set_cpu_limit("8").set_memory_limit("32G"))
        promote(registry=registry, version=VERSION, min_improvement=min_improvement).after(scored) \
            .set_display_name("promote")

    return retrain


def compile_pipeline(image: str, output: str, gpu: bool = False) -> str:
    compiler.Compiler().compile(build_pipeline(image, gpu), output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.pipelines.retrain", description=__doc__.split("\n")[0])
    parser.add_argument("--image", required=True, help="REGION-docker.pkg.dev/PROJECT/atsep/atsep:TAG")
    parser.add_argument("--gpu", action="store_true", help=f"train on {GPU['machine_type']} + {GPU['accelerator_type']}")
    parser.add_argument("--output", default="build/retrain.json", help="compiled pipeline spec (JSON or YAML)")
    args = parser.parse_args(argv)
    print(compile_pipeline(args.image, args.output, args.gpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
