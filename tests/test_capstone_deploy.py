"""The runbook's files (deploy/) name what exists: the CLI's real flags, the repository's requirements files, the
fields of KubeRay's RayJob (ray.io/v1) and of Ray's cluster launcher, and a shared volume under every path.

Every ``python -m chapter09.capstone ...`` line in deploy/*.yaml and in the README's "Running on a real cluster"
is parsed by the capstone's own parser (abbreviations off), so a renamed or dropped flag fails here, not on a
user's cluster. The RayJob fields are KubeRay's v1 API reference (ray-project/kuberay docs/reference/api.md);
the cluster file is checked against the JSON schema Ray ships (ray/autoscaler/ray-schema.json), and in the slow
tier by ``ray up``'s own preparation and ``ray start``'s own option parser.
"""
import argparse
import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
README = ROOT / "chapter09/capstone/README.md"
RUNBOOK_HEADING = "Running on a real cluster"

# KubeRay v1 API reference: the fields each type accepts (anything else is dropped or refused by the CRD).
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
               "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint", "runtimeEnvYAML",
               "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus", "entrypointNumGpus",
               "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend", "schedule"}
RAYCLUSTER_SPEC = {"suspend", "managedBy", "autoscalerOptions", "headServiceAnnotations", "enableInTreeAutoscaling",
                   "gcsFaultToleranceOptions", "headGroupSpec", "rayVersion", "workerGroupSpecs", "authOptions"}
HEAD_GROUP = {"template", "headService", "enableIngress", "rayStartParams", "serviceType"}
WORKER_GROUP = {"suspend", "groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds",
                "rayStartParams", "template", "scaleStrategy", "numOfHosts"}


def _load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _runbook() -> str:
    text = README.read_text()
    start = text.index(RUNBOOK_HEADING)
    end = text.find("\n**", start + len(RUNBOOK_HEADING))
    return text[start:end if end > 0 else None]


def _commands(text: str) -> list[list[str]]:
    """Every ``python -m chapter09.capstone`` command in ``text``: to the end of its line, an ``&&``, a closing
    quote or a comment, shell continuations joined."""
    text = text.replace("\\\n", " ")
    found = re.findall(r"python -m chapter09\.capstone ([^\n\"&#]+)", text)
    return [shlex.split(command) for command in found]


def _parse(argv: list[str]) -> argparse.Namespace:
    from chapter09.capstone.__main__ import build_parser

    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for sub in subcommands.choices.values():
        sub.allow_abbrev = False  # "--ray-addr" must not pass for "--ray-address"
    try:
        return parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"the runbook's command does not parse with today's CLI: python -m chapter09.capstone "
                    f"{shlex.join(argv)} (see the argparse message above; fix deploy/ or the README)")


def test_every_runbook_command_parses_with_the_real_cli():
    rayjob = _load("kuberay-rayjob.yaml")
    sources = {"kuberay-rayjob.yaml": rayjob["spec"]["entrypoint"],
               "ray-cluster.yaml": (DEPLOY / "ray-cluster.yaml").read_text(), "README": _runbook()}
    seen = {}
    for source, text in sources.items():
        commands = [_parse(argv) for argv in _commands(text)]
        seen[source] = sorted(ns.command for ns in commands)
        for ns in commands:
            assert ns.engine == "ray", (source, ns)
            assert not ns.index.startswith("/tmp"), (source, ns.index)  # shared storage, not one node's disk
    # the RayJob and the cluster file each run both steps; the README shows both
    assert seen == {"kuberay-rayjob.yaml": ["caption", "index"], "ray-cluster.yaml": ["caption", "index"],
                    "README": ["caption", "caption", "index", "index"]}, seen


def test_a_renamed_flag_fails_the_check():
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        _parse(shlex.split("index /data/photos --index /data/index --engine ray --ray-addr auto"))
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        _parse(shlex.split("caption --index /data/index --engine ray --captioners 4"))


def test_requirements_files_the_runbook_names_exist():
    named = set()
    for path in [*DEPLOY.glob("*.yaml"), README]:
        named |= set(re.findall(r"\brequirements[\w-]*\.txt\b", path.read_text()))
    assert {"requirements.txt", "requirements-scale.txt"} <= named
    assert [name for name in sorted(named) if not (ROOT / name).is_file()] == []


def test_rayjob_uses_only_kuberay_v1_fields_and_a_shared_volume_under_every_path():
    job = _load("kuberay-rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])  # a DNS-1123 name
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC, set(spec) - RAYJOB_SPEC
    assert isinstance(spec["entrypoint"], str)
    if "ttlSecondsAfterFinished" in spec:  # KubeRay: the TTL only works with shutdownAfterJobFinishes
        assert spec.get("shutdownAfterJobFinishes") is True
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= RAYCLUSTER_SPEC, set(cluster) - RAYCLUSTER_SPEC
    pinned = re.search(r"ray\[data\]==([\d.]+)", (ROOT / "requirements-scale.txt").read_text()).group(1)
    assert cluster["rayVersion"] == pinned  # the cluster runs the Ray the driver code was tested with
    head = cluster["headGroupSpec"]
    assert set(head) <= HEAD_GROUP, set(head) - HEAD_GROUP
    groups = cluster["workerGroupSpecs"]
    assert groups and len({g["groupName"] for g in groups}) == len(groups)
    templates = [head["template"]]
    for group in groups:
        assert set(group) <= WORKER_GROUP, set(group) - WORKER_GROUP
        assert group.get("minReplicas", 0) <= group.get("replicas", 0) <= group.get("maxReplicas", 2 ** 31 - 1)
        templates.append(group["template"])
    for params in [head.get("rayStartParams", {})] + [g.get("rayStartParams", {}) for g in groups]:
        # map[string]string in the CRD: an unquoted 1 is refused by the API server
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()), params

    # every path the commands read or write lies on the same ReadWriteMany claim in every pod
    paths = []
    for argv in _commands(spec["entrypoint"]):
        ns = _parse(argv)
        paths += [ns.index] + ([ns.library] if ns.command == "index" else [])
    assert paths
    for template in templates:
        pod = template["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v}
        mounts = {m["mountPath"]: claims.get(m["name"]) for c in pod["containers"] for m in c.get("volumeMounts", [])}
        for path in paths:
            on = [claim for mount, claim in mounts.items() if path == mount or path.startswith(mount.rstrip("/") + "/")]
            assert on == ["photos-pvc"], (path, mounts)


def test_cluster_file_matches_rays_own_schema():
    jsonschema = pytest.importorskip("jsonschema")
    spec = importlib.util.find_spec("ray")
    if spec is None:
        pytest.skip("Ray is not installed: pip install -r requirements-scale.txt")
    schema = json.loads((Path(spec.origin).parent / "autoscaler/ray-schema.json").read_text())
    config = _load("ray-cluster.yaml")
    jsonschema.validate(config, schema)  # raises with the offending field
    assert config["provider"]["type"] == "local" and len(config["provider"]["worker_ips"]) >= 1
    started = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert any("--head" in c for c in started) and any("--address" in c for c in started)


@pytest.mark.slow
def test_cluster_file_passes_ray_up_preparation_and_ray_start_options():
    """``ray up``'s own preparation and validation, and every ``ray start`` line (and the RayJob's rayStartParams,
    which KubeRay turns into ``ray start --KEY=VALUE``) through ``ray start``'s own option parser (6 s of imports)."""
    pytest.importorskip("ray")
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config
    from ray.scripts.scripts import start

    config = _load("ray-cluster.yaml")
    validate_config(prepare_config(config))
    lines = [shlex.split(c) for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"]]
    cluster = _load("kuberay-rayjob.yaml")["spec"]["rayClusterSpec"]
    kuberay = [("--head", cluster["headGroupSpec"].get("rayStartParams", {}))]
    kuberay += [("--address=head:6379", g.get("rayStartParams", {})) for g in cluster["workerGroupSpecs"]]
    lines += [["ray", "start", role, *(f"--{k}={v}" for k, v in params.items())] for role, params in kuberay]
    for argv in lines:
        if argv[:2] != ["ray", "start"]:
            continue  # "ray stop"
        start.make_context("start", argv[2:])  # click raises NoSuchOption / BadParameter
