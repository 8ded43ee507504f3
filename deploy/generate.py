"""Write the deploy files that repeat what llmlens knows, or check that the checked-in copies are current.

    make deploy-files                       # = python deploy/generate.py
    python deploy/generate.py --check       # exit 1 naming each file that is stale, missing or extra

Each file comes from an llmlens command, run as a user would run it, with the addresses of the stack
it is for:

    llmlens export prometheus-rules  -> compose/prometheus/rules/llmlens.rules.yml (recording rules, and
                                        the default alert rules as alerting rules, job `llmlens`)
                                        kubernetes/overlays/cluster/monitoring/prometheus-rule.yaml
                                        (the same groups in a Prometheus Operator PrometheusRule)
    llmlens export grafana           -> compose/grafana/{provisioning,dashboards}/ (compose addresses)
                                        kubernetes/overlays/cluster/monitoring/dashboards/ (dashboards only,
                                        one ConfigMap each, labelled for Grafana's dashboard sidecar;
                                        monitoring/kustomization.yaml lists them)

The folders named in GENERATED hold nothing else: a file there that the commands no longer write is
reported by --check and removed by a write.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent

# Folders (relative to deploy/) whose whole content is generated.
GENERATED = (
    "compose/prometheus/rules",
    "compose/grafana",
    "kubernetes/overlays/cluster/monitoring",
)

# Where Grafana, Prometheus, ClickHouse and the UI are, as seen from the compose stack's Grafana and
# from a browser on the Docker host (compose/README.md).
COMPOSE_GRAFANA = [
    "--prometheus-url", "http://prometheus:9090",
    "--clickhouse-url", "http://grafana@lb:8123/llmlens",
    "--llmlens-url", "http://localhost:4318",
    "--job", "llmlens",
    "--dashboards-path", "/var/lib/grafana/dashboards/llmlens",
]
# In Kubernetes only the dashboards are used (data sources belong to the cluster's Grafana); trace
# links point at the Ingress a team gives the UI, to be replaced.
KUBERNETES_GRAFANA = ["--llmlens-url", "https://llmlens.example.com", "--job", "llmlens"]

# Grafana's dashboard sidecar (the grafana Helm chart, kube-prometheus-stack) loads ConfigMaps with this label.
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
GENERATED_HEADER = "# Written by `make deploy-files` (deploy/generate.py); do not edit.\n"

PROMETHEUS_RULE_HEADER = (
    "# The recording and alerting rules of `llmlens export prometheus-rules`, as a Prometheus Operator\n"
    "# PrometheusRule. The rules it could not express are listed in compose/prometheus/rules/llmlens.rules.yml.\n"
    "# Written by `make deploy-files` (deploy/generate.py); do not edit.\n"
)


class GenerateError(RuntimeError):
    """An llmlens command failed; the message holds its output."""


def llmlens(*args: str) -> str:
    """Run `llmlens ARGS` with this interpreter's llmlens; its standard output."""
    command = [sys.executable, "-c", "import sys; from llmlens.cli import main; sys.exit(main())", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise GenerateError(f"`llmlens {' '.join(args)}` exited {result.returncode}: "
                            f"{result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def prometheus_rule(rules_text: str) -> str:
    groups = yaml.safe_load(rules_text)["groups"]
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "llmlens", "labels": {"app.kubernetes.io/name": "llmlens"}},
        "spec": {"groups": groups},
    }
    return PROMETHEUS_RULE_HEADER + yaml.safe_dump(resource, sort_keys=False, allow_unicode=True, width=1000)


def monitoring_kustomization(dashboards: list[str]) -> str:
    """The PrometheusRule, and one ConfigMap per dashboard (a ConfigMap of all three would pass the
    256 KiB limit of `kubectl apply`'s last-applied annotation sooner)."""
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["prometheus-rule.yaml"],
        "generatorOptions": {"disableNameSuffixHash": True, "labels": DASHBOARD_LABEL,
                             "annotations": {"grafana_folder": "llmlens"}},
        "configMapGenerator": [{"name": f"grafana-dashboard-{Path(name).stem}", "files": [f"dashboards/{name}"]}
                               for name in dashboards],
    }
    return GENERATED_HEADER + yaml.safe_dump(kustomization, sort_keys=False, width=1000)


def write_all(root: Path) -> None:
    """Write every generated file under `root` (a folder laid out like deploy/)."""
    for folder in GENERATED:
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir(parents=True)

    rules = root / "compose/prometheus/rules/llmlens.rules.yml"
    llmlens("export", "prometheus-rules", "--out", str(rules))
    monitoring = root / "kubernetes/overlays/cluster/monitoring"
    (monitoring / "prometheus-rule.yaml").write_text(prometheus_rule(rules.read_text()), encoding="utf-8")

    llmlens("export", "grafana", "--out", str(root / "compose/grafana"), *COMPOSE_GRAFANA)
    with tempfile.TemporaryDirectory() as tmp:
        llmlens("export", "grafana", "--out", tmp, *KUBERNETES_GRAFANA)
        shutil.copytree(Path(tmp) / "dashboards", monitoring / "dashboards")
    dashboards = sorted(p.name for p in (monitoring / "dashboards").glob("*.json"))
    (monitoring / "kustomization.yaml").write_text(monitoring_kustomization(dashboards), encoding="utf-8")


def generated_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for folder in GENERATED if (root / folder).is_dir()
            for p in (root / folder).rglob("*") if p.is_file()}


def differences(checked_in: Path, fresh: Path) -> list[str]:
    """One line per generated file that differs between the two trees."""
    have, want = generated_files(checked_in), generated_files(fresh)
    lines = [f"missing: {p}" for p in sorted(want - have)]
    lines += [f"not written by any command (remove it): {p}" for p in sorted(have - want)]
    lines += [f"stale: {p}" for p in sorted(have & want)
              if not filecmp.cmp(checked_in / p, fresh / p, shallow=False)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a checked-in file differs from what the commands write")
    parser.add_argument("--root", type=Path, default=DEPLOY,
                        help="the deploy folder to write or check (default: this script's folder)")
    args = parser.parse_args(argv)
    try:
        if not args.check:
            write_all(args.root)
            print(f"wrote {len(generated_files(args.root))} files under {', '.join(GENERATED)}")
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            write_all(Path(tmp))
            problems = differences(args.root, Path(tmp))
    except GenerateError as exc:
        print(f"generate: error: {exc}", file=sys.stderr)
        return 1
    for line in problems:
        print(line)
    if problems:
        print("generated deploy files are out of date: run `make deploy-files` and commit the result",
              file=sys.stderr)
        return 1
    print("generated deploy files are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
