"""The deploy files (deploy/): checked by the tools that will read them, and against each other.

docker-compose (Debian's 1.29) renders the compose project; HAProxy, promtool and amtool check their
configs; `kubectl kustomize` builds every overlay and kubernetes-validate checks each object against
the Kubernetes 1.32 schemas (strict: unknown fields fail). The custom resources (Altinity's
ClickHouse[Keeper]Installation, the Prometheus Operator's Prometheus, ServiceMonitor and PrometheusRule) have
no schema there and are named as skipped. ClickHouse's XML and the OpenTelemetry Collector's config
have no checker installable here: they are parsed and cross-checked. No container runs here (no
image registry is reachable; deploy/README.md), so nothing is started.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from llmlens.cli import build_parser
from llmlens.demo import mock_llm
from llmlens.demo.settings import ENV_LLM_API_KEY
from llmlens.export.grafana_setup import CLICKHOUSE_PASSWORD_VARIABLE
from llmlens.server.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.32"
CUSTOM_RESOURCES = {"ClickHouseInstallation", "ClickHouseKeeperInstallation", "ServiceMonitor", "PrometheusRule",
                    "Prometheus"}
# An image is pinned when its tag is a version (digits and dots, an optional suffix), never "latest".
PINNED = re.compile(r"^[\w./-]+:v?\d+(\.\d+)+(-[\w.]+)?$")
# What the cluster part of the production issue adds (schema DDL templates, `llmlens db`), used here
# ahead of it: checked like the rest once llmlens knows them.
PENDING_COMMANDS = {("db", "init")}
PENDING_SETTINGS = {"LLMLENS_CLICKHOUSE_CLUSTER"}


def run(command: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} missing: install Debian's {package} package (make test does)"
    return path


# ---------------------------------------------------------------------------- generated files


def test_generated_files_are_current() -> None:
    result = run([sys.executable, str(DEPLOY / "generate.py"), "--check"], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "generated deploy files are current" in result.stdout


def test_check_names_a_stale_or_extra_file_and_a_write_fixes_it(tmp_path: Path) -> None:
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    board = copy / "compose/grafana/dashboards/llmlens-llm-overview.json"
    board.write_text(board.read_text().replace('"title"', '"titel"', 1))
    (copy / "compose/prometheus/rules/old.yml").write_text("groups: []\n")
    (copy / "kubernetes/overlays/cluster/monitoring/prometheus-rule.yaml").unlink()

    checked = run([sys.executable, str(copy / "generate.py"), "--check", "--root", str(copy)], timeout=300)
    assert checked.returncode == 1
    assert "stale: compose/grafana/dashboards/llmlens-llm-overview.json" in checked.stdout
    assert "not written by any command (remove it): compose/prometheus/rules/old.yml" in checked.stdout
    assert "missing: kubernetes/overlays/cluster/monitoring/prometheus-rule.yaml" in checked.stdout
    assert "make deploy-files" in checked.stderr

    written = run([sys.executable, str(copy / "generate.py"), "--root", str(copy)], timeout=300)
    assert written.returncode == 0, written.stderr
    again = run([sys.executable, str(copy / "generate.py"), "--check", "--root", str(copy)], timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr


# ---------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The project as docker-compose renders it (all profiles, the example settings)."""
    tool = need("docker-compose", "docker-compose")
    result = run([tool, "--env-file", ".env.example", "--profile", "demo", "config"], cwd=COMPOSE)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def services_named(compose: dict[str, Any], prefix: str) -> list[str]:
    return sorted(name for name in compose["services"] if name.startswith(prefix))


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services_named(compose, "keeper-") == ["keeper-1", "keeper-2", "keeper-3"]
    assert services_named(compose, "clickhouse-") == [
        "clickhouse-s1r1", "clickhouse-s1r2", "clickhouse-s2r1", "clickhouse-s2r2"]
    assert services_named(compose, "llmlens-") == ["llmlens-1", "llmlens-2"]
    assert {"lb", "schema-init", "prometheus", "alertmanager", "grafana", "node-exporter"} <= set(services)
    assert services_named(compose, "demo-") == ["demo-chatbot", "demo-llm", "demo-retriever", "demo-traffic"]
    for name in services_named(compose, "demo-"):
        assert services[name]["profiles"] == ["demo"], name


def test_compose_images_are_pinned_and_llmlens_is_built_here(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert PINNED.match(service["image"]), f"{name}: image {service['image']!r} is not pinned to a version"
    built = {name: s["build"] for name, s in compose["services"].items() if "build" in s}
    assert list(built) == ["schema-init"], "the llmlens image is built once, by one service"
    assert Path(built["schema-init"]["context"]) == ROOT
    assert (ROOT / built["schema-init"]["dockerfile"]).is_file()


def test_compose_evaluates_alerts_on_one_replica_only(compose: dict[str, Any]) -> None:
    flags = {name: compose["services"][name]["environment"]["LLMLENS_EVALUATE_ALERTS"]
             for name in services_named(compose, "llmlens-")}
    assert sorted(flags.values()) == ["false", "true"], flags
    for name in services_named(compose, "llmlens-"):
        environment = compose["services"][name]["environment"]
        assert environment["LLMLENS_API_KEY_FILE"] == "/run/secrets/llmlens_api_key"
        assert environment["LLMLENS_CLICKHOUSE_URL"].startswith("http://llmlens:")
        assert compose["services"][name]["depends_on"]["schema-init"]["condition"] == \
            "service_completed_successfully"


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Target -> source of a rendered service's volumes (docker-compose 1.x writes `src:dst:mode`)."""
    pairs = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            pairs[volume["target"]] = volume.get("source", "")
        else:
            source, target = volume.split(":")[:2]
            pairs[target] = source
    return pairs


def test_compose_mounts_files_that_exist(compose: dict[str, Any]) -> None:
    mounted = 0
    for name, service in compose["services"].items():
        for source in mounts(service).values():
            if source.startswith(str(COMPOSE)):
                assert Path(source).exists(), f"{name} mounts {source}, which is not in the repository"
                mounted += 1
    assert mounted >= 15
    for secret in compose["secrets"].values():
        assert Path(secret["file"]).parent == COMPOSE / "secrets"


def test_llmlens_commands_and_settings_of_the_stack_exist(compose: dict[str, Any]) -> None:
    """Every `llmlens ...` command parses; every LLMLENS_* variable is read by llmlens: a server setting,
    a *_FILE secret of the image's entrypoint, the demo's LLM key, or Grafana's ClickHouse password."""
    parser = build_parser()
    known_env = {s.env for s in SETTINGS} | {f"{name}_FILE" for name in entrypoint_secrets()}
    known_env |= {ENV_LLM_API_KEY, CLICKHOUSE_PASSWORD_VARIABLE}
    commands = [s["command"] for s in compose["services"].values() if s.get("command", [""])[0] == "llmlens"]
    commands += [c["args"] for c in kubernetes_containers() if c.get("args", [""])[0] == "llmlens"]
    assert len(commands) >= 9
    for command in commands:
        args = [os.path.expandvars(a.replace("${DEMO_TRAFFIC_RATE:-2}", "2")) for a in command[1:]]
        if tuple(args[:2]) in PENDING_COMMANDS and args[0] not in parser_commands(parser):
            continue
        try:
            parsed = parser.parse_args(args)
            if getattr(parsed, "demo_command", None) == "llm":
                mock_llm.parse_args(parsed.mock_llm_args)
        except SystemExit as exc:
            pytest.fail(f"`{shlex.join(command)}` does not parse (exit {exc.code})")
    environments = [s.get("environment", {}) for s in compose["services"].values()]
    environments += [{e["name"]: e.get("value") for e in c.get("env", [])} for c in kubernetes_containers()]
    names = {name for env in environments for name in env if name.startswith("LLMLENS_")}
    assert "LLMLENS_EVALUATE_ALERTS" in names
    unknown = names - known_env - PENDING_SETTINGS
    assert not unknown, f"not llmlens settings: {sorted(unknown)}"


def parser_commands(parser: Any) -> set[str]:
    return {name for action in parser._subparsers._group_actions for name in action.choices}


def test_init_secrets_writes_every_secret_once(tmp_path: Path) -> None:
    project = tmp_path / "compose"
    shutil.copytree(COMPOSE, project, ignore=shutil.ignore_patterns(".env", "llmlens_api_key", "*_token",
                                                                    "*_url", "smtp_password"))
    first = run(["sh", str(project / "init-secrets.sh"), str(project)])
    assert first.returncode == 0, first.stderr
    env = dict(line.split("=", 1) for line in (project / ".env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert "change-me" not in env.values(), env
    assert len(env["CLICKHOUSE_LLMLENS_PASSWORD"]) == 48 and env["COMPOSE_PROJECT_NAME"] == "llmlens"
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    for secret in compose["secrets"].values():
        path = project / secret["file"]
        assert path.is_file() and path.read_text(), path
    assert len((project / "secrets/llmlens_api_key").read_text()) >= 16  # llmlens's minimum
    assert (project / "secrets/slack_webhook_url").read_text().startswith("https://hooks.slack.com/services/")

    key = (project / "secrets/llmlens_api_key").read_text()
    second = run(["sh", str(project / "init-secrets.sh"), str(project)])
    assert second.returncode == 0 and second.stdout == "", second.stdout
    assert (project / "secrets/llmlens_api_key").read_text() == key, "a second run must keep the secrets"

    rendered = run([need("docker-compose", "docker-compose"), "config", "--quiet"], cwd=project)
    assert rendered.returncode == 0, rendered.stderr


# ---------------------------------------------------------------------------- ClickHouse XML


def xml(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def test_clickhouse_cluster_is_two_shards_of_two_replicas_on_three_keepers(compose: dict[str, Any]) -> None:
    config = xml(COMPOSE / "clickhouse/config.d/cluster.xml")
    shards = config.findall("remote_servers/llmlens/shard")
    assert len(shards) == 2
    placement = {}
    for number, shard in enumerate(shards, start=1):
        assert shard.findtext("internal_replication") == "true"
        hosts = [replica.findtext("host") for replica in shard.findall("replica")]
        assert len(hosts) == 2
        placement.update({host: f"{number:02d}" for host in hosts})
    assert sorted(placement) == services_named(compose, "clickhouse-")
    assert config.find("remote_servers/llmlens/secret").get("from_env") == "CLICKHOUSE_CLUSTER_SECRET"

    for node, shard in placement.items():
        service = compose["services"][node]
        mounted = mounts(service)
        macros = xml(Path(mounted["/etc/clickhouse-server/config.d/macros.xml"])).find("macros")
        assert (macros.findtext("cluster"), macros.findtext("shard"), macros.findtext("replica")) == \
            ("llmlens", shard, node)
        assert service["hostname"] == node
        assert mounted["/etc/clickhouse-server/config.d/cluster.xml"] == str(COMPOSE / "clickhouse/config.d/cluster.xml")

    keepers = services_named(compose, "keeper-")
    assert [n.findtext("host") for n in config.findall("zookeeper/node")] == keepers
    keeper = xml(COMPOSE / "keeper/keeper_config.xml").find("keeper_server")
    raft = {s.findtext("id"): s.findtext("hostname") for s in keeper.findall("raft_configuration/server")}
    assert raft == {compose["services"][k]["environment"]["KEEPER_SERVER_ID"]: k for k in keepers}
    assert keeper.find("server_id").get("from_env") == "KEEPER_SERVER_ID"
    port = keeper.findtext("tcp_port")
    assert {n.findtext("port") for n in config.findall("zookeeper/node")} == {port}


def test_clickhouse_users_read_passwords_the_nodes_are_given(compose: dict[str, Any]) -> None:
    users = xml(COMPOSE / "clickhouse/users.d/llmlens-users.xml").find("users")
    assert {u.tag for u in users} == {"llmlens", "grafana"}
    assert users.findtext("grafana/profile") == "readonly"
    needed = {u.find("password").get("from_env") for u in users}
    needed.add(xml(COMPOSE / "clickhouse/config.d/cluster.xml").find("remote_servers/llmlens/secret").get("from_env"))
    for node in services_named(compose, "clickhouse-"):
        assert needed <= set(compose["services"][node]["environment"]), node
    grafana_password = compose["services"]["grafana"]["environment"]["LLMLENS_CLICKHOUSE_PASSWORD"]
    assert grafana_password == compose["services"]["clickhouse-s1r1"]["environment"]["CLICKHOUSE_GRAFANA_PASSWORD"]


# ---------------------------------------------------------------------------- HAProxy, Prometheus, Alertmanager


def test_haproxy_config_is_valid_and_balances_every_replica(compose: dict[str, Any]) -> None:
    result = run([need("haproxy", "haproxy"), "-c", "-f", str(COMPOSE / "haproxy/haproxy.cfg")])
    assert result.returncode == 0 and "Configuration file is valid" in result.stdout, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if "[WARNING]" in line]
    assert all("could not resolve address" in line for line in warnings), warnings  # no Docker DNS here
    text = (COMPOSE / "haproxy/haproxy.cfg").read_text()
    for backend, nodes, port in (("llmlens_http", "llmlens-", 4318), ("llmlens_grpc", "llmlens-", 4317),
                                 ("clickhouse", "clickhouse-", 8123)):
        section = re.search(rf"^backend {backend}\n(.*?)(?:\n\n|\Z)", text, re.M | re.S).group(1)
        servers = re.findall(r"^\s+server (\S+) (\S+):(\d+)", section, re.M)
        assert [(s, h, int(p)) for s, h, p in servers] == [(n, n, port) for n in services_named(compose, nodes)]
    published = {int(p["target"]) if isinstance(p, dict) else int(p.split(":")[-1].split("/")[0])
                 for p in compose["services"]["lb"]["ports"]}
    assert {4317, 4318} <= published


def test_prometheus_config_and_rules_pass_promtool(tmp_path: Path, compose: dict[str, Any]) -> None:
    promtool = need("promtool", "prometheus")
    # The config names the API key's path inside the container; promtool opens it: point it here.
    config_dir = tmp_path / "prometheus"
    shutil.copytree(COMPOSE / "prometheus", config_dir)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets/llmlens_api_key").write_text("k" * 32)
    config_path = config_dir / "prometheus.yml"
    config_path.write_text(config_path.read_text().replace("/run/secrets/", f"{tmp_path}/secrets/"))
    result = run([promtool, "check", "config", str(config_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout

    rules = run([promtool, "check", "rules", *map(str, sorted((COMPOSE / "prometheus/rules").glob("*.yml")))])
    assert rules.returncode == 0 and "SUCCESS" in rules.stdout, rules.stdout + rules.stderr

    config = yaml.safe_load((COMPOSE / "prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    llmlens = jobs["llmlens"]
    assert llmlens["authorization"]["credentials_file"] == "/run/secrets/llmlens_api_key"
    assert "llmlens_api_key" in [s["source"] for s in compose["services"]["prometheus"]["secrets"]]
    assert sorted(llmlens["static_configs"][0]["targets"]) == [f"{n}:4318" for n in services_named(compose, "llmlens-")]
    assert "node" in jobs and "demo-apps" in jobs
    for job in jobs.values():
        for target in job["static_configs"][0]["targets"]:
            host = target.split(":")[0]
            assert host == "localhost" or host in compose["services"], f"{job['job_name']}: {target}"
    assert "--enable-feature=exemplar-storage" in compose["services"]["prometheus"]["command"]


def test_prometheus_loads_the_alerting_rules_and_sends_to_alertmanager(compose: dict[str, Any]) -> None:
    """The default alert rules that have a PromQL form, for the `llmlens` job, go to the Alertmanager
    llmlens-1 sends to, with the same labels (the stack's external label dropped from alerts)."""
    groups = yaml.safe_load((COMPOSE / "prometheus/rules/llmlens.rules.yml").read_text())["groups"]
    alerting = {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}
    assert {"HighErrorRate", "HighLatencyP95", "SlowTimeToFirstToken", "UnpricedModelCalls"} <= set(alerting)
    assert all('job="llmlens"' in rule["expr"] for rule in alerting.values())
    config = yaml.safe_load((COMPOSE / "prometheus/prometheus.yml").read_text())
    [manager] = config["alerting"]["alertmanagers"]
    assert manager["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "alertmanager" in compose["services"]
    evaluator = compose["services"]["llmlens-1"]["environment"]
    assert evaluator["LLMLENS_ALERTMANAGER_URL"] == "http://alertmanager:9093"
    dropped = [r["regex"] for r in config["alerting"]["alert_relabel_configs"] if r["action"] == "labeldrop"]
    assert set(config["global"]["external_labels"]) <= set(dropped)


def test_alertmanager_config_passes_amtool_and_keeps_secrets_in_files(compose: dict[str, Any]) -> None:
    path = COMPOSE / "alertmanager/alertmanager.yml"
    result = run([need("amtool", "prometheus-alertmanager"), "check-config", str(path)])
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    kinds = {kind for r in receivers.values() for kind in r if kind.endswith("_configs")}
    assert kinds == {"email_configs", "slack_configs", "webhook_configs"}
    routed = {route["receiver"] for route in config["route"]["routes"]}
    assert routed == set(receivers)

    mounted = {s["source"] for s in compose["services"]["alertmanager"]["secrets"]}
    files = re.findall(r"_file: (\S+)", path.read_text())
    assert len(files) == 3
    assert {f.removeprefix("/run/secrets/") for f in files} == mounted
    for inline in ("smtp_auth_password:", "slack_api_url:", "api_url:", "credentials:"):
        assert inline not in path.read_text(), f"{inline} holds a secret in the file"


# ---------------------------------------------------------------------------- Kubernetes


def kustomize(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl (1.32, Kustomize 5) is not installed: it comes with the machine image (Google "
                    "Cloud SDK's kubectl package, not reachable from here) and Debian's kubernetes-client "
                    "is 1.20, too old for these files")
    result = run([kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(objects: list[dict[str, Any]]) -> set[str]:
    """Validate every object against the Kubernetes schemas; the kinds skipped for lack of one."""
    skipped, problems = set(), []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except SchemaNotFoundError:
            skipped.add(obj["kind"])
        except ValidationError as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']} at {'.'.join(map(str, exc.path))}: "
                            f"{exc.message}")
    assert not problems, "\n".join(problems)
    return skipped


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_kubernetes_validation_rejects_an_unknown_field() -> None:
    """The validation below is strict: a misspelt field fails it."""
    deployment = by_kind(kustomize("small"), "Deployment")["llmlens"]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_small_overlay_is_one_replica_on_a_volume() -> None:
    objects = kustomize("small")
    assert validate(objects) == set()
    deployment = by_kind(objects, "Deployment")["llmlens"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    assert claim in by_kind(objects, "PersistentVolumeClaim") and "emptyDir" not in volumes["data"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e for e in container["env"]}
    assert mounts["data"] == env["LLMLENS_DATA_DIR"]["value"]
    assert env["LLMLENS_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] in by_kind(objects, "Secret")
    assert "LLMLENS_CLICKHOUSE_URL" not in env
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"llmlens"}


def test_cluster_overlay_objects() -> None:
    objects = kustomize("cluster")
    assert validate(objects) == CUSTOM_RESOURCES
    kinds = {o["kind"] for o in objects}
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "NetworkPolicy", "Secret",
            "DaemonSet", "Job", "ConfigMap"} <= kinds
    deployments = by_kind(objects, "Deployment")
    server, evaluator = deployments["llmlens"], deployments["llmlens-alert-evaluator"]
    assert "replicas" not in server["spec"], "the HPA owns the replica count"
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["llmlens"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llmlens"}
    assert hpa["spec"]["minReplicas"] >= 2

    def env(deployment: dict[str, Any]) -> dict[str, Any]:
        return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert env(server)["LLMLENS_EVALUATE_ALERTS"] == "false"
    assert env(evaluator)["LLMLENS_EVALUATE_ALERTS"] == "true"
    assert evaluator["spec"]["replicas"] == 1 and evaluator["spec"]["strategy"] == {"type": "Recreate"}

    # The Service, PDB and ServiceMonitor reach the server pods, never the evaluator's.
    pod_labels = server["spec"]["template"]["metadata"]["labels"]
    evaluator_labels = evaluator["spec"]["template"]["metadata"]["labels"]
    service = by_kind(objects, "Service")["llmlens"]
    pdb = by_kind(objects, "PodDisruptionBudget")["llmlens"]
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items() and not selector.items() <= evaluator_labels.items()
    monitor = by_kind(objects, "ServiceMonitor")["llmlens"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["authorization"]["credentials"] == {"name": "llmlens", "key": "api-key"}

    annotations = server["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "4318"
    assert annotations["k8s.grafana.com/scrape"] == "true"
    assert annotations["k8s.grafana.com/metrics.portNumber"] == "4318"

    # ClickHouse: 2 shards x 2 replicas on the Keeper ensemble the operator serves as keeper-<name>.
    chi = by_kind(objects, "ClickHouseInstallation")["llmlens"]
    chk_name, chk = next(iter(by_kind(objects, "ClickHouseKeeperInstallation").items()))
    assert chi["spec"]["configuration"]["clusters"][0]["layout"] == {"shardsCount": 2, "replicasCount": 2}
    assert chk["spec"]["configuration"]["clusters"][0]["layout"] == {"replicasCount": 3}
    assert chi["spec"]["configuration"]["zookeeper"]["nodes"] == [{"host": f"keeper-{chk_name}", "port": 2181}]
    cluster = chi["spec"]["configuration"]["clusters"][0]["name"]
    assert env(server)["LLMLENS_CLICKHOUSE_CLUSTER"] == cluster
    assert env(server)["LLMLENS_CLICKHOUSE_URL"] == \
        f"http://llmlens:$(CLICKHOUSE_PASSWORD)@clickhouse-{chi['metadata']['name']}:8123/llmlens"
    secrets = by_kind(objects, "Secret")
    for user in ("llmlens", "grafana"):
        ref = chi["spec"]["configuration"]["users"][f"{user}/password"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["stringData"]
    for deployment in (server, evaluator):
        for variable in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]]["stringData"], ref

    prometheus = by_kind(objects, "Prometheus")["llmlens"]
    assert PINNED.match(f"prom/prometheus:{prometheus['spec']['version']}")

    images = [c["image"] for o in objects if o["kind"] in {"Deployment", "DaemonSet", "Job"}
              for c in o["spec"]["template"]["spec"]["containers"]]
    images += [c["image"] for o in (chi, chk) for t in o["spec"]["templates"]["podTemplates"]
               for c in t["spec"]["containers"]]
    for image in images:
        assert PINNED.match(image), f"image {image!r} is not pinned to a version"

    dashboards = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("grafana_dashboard")]
    assert len(dashboards) == 3
    rule = by_kind(objects, "PrometheusRule")["llmlens"]
    assert [g["name"] for g in rule["spec"]["groups"]] == ["llmlens-llm-recording", "llmlens-alerts"]


def test_otel_collector_forwards_otlp_logs_and_node_metrics_to_llmlens() -> None:
    objects = kustomize("cluster")
    daemonset = by_kind(objects, "DaemonSet")["otel-collector"]
    pod = daemonset["spec"]["template"]["spec"]
    configmap_name = next(v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v)
    config = yaml.safe_load(by_kind(objects, "ConfigMap")[configmap_name]["data"]["config.yaml"])

    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for name, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline[section]:
                assert component in config[section], f"{name}: {section[:-1]} {component} is not defined"
    assert "otlp" in pipelines["traces"]["receivers"]
    assert {"otlp", "kubeletstats", "hostmetrics"} <= set(pipelines["metrics"]["receivers"])
    assert {"otlp", "filelog"} <= set(pipelines["logs"]["receivers"])
    assert set(config["service"]["extensions"]) <= set(config["extensions"])

    exporter = config["exporters"]["otlphttp/llmlens"]
    service = by_kind(objects, "Service")["llmlens"]
    assert exporter["endpoint"] == f"http://{service['metadata']['name']}:4318"
    container = pod["containers"][0]
    given = {e["name"] for e in container["env"]}
    used = set(re.findall(r"\$\{env:(\w+)\}", by_kind(objects, "ConfigMap")[configmap_name]["data"]["config.yaml"]))
    assert used and used <= given, f"variables the config reads but the pod lacks: {used - given}"
    assert {p["hostPort"] for p in container["ports"]} == {4317, 4318}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/log/pods" in mounts and config["receivers"]["hostmetrics"]["root_path"] in mounts

    bindings = by_kind(objects, "ClusterRoleBinding")
    subjects = [s for b in bindings.values() for s in b["subjects"]]
    assert {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "llmlens"} in subjects


def kubernetes_containers() -> list[dict[str, Any]]:
    containers = []
    for path in KUBERNETES.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            template = (doc or {}).get("spec", {}).get("template", {})
            containers += template.get("spec", {}).get("containers", []) if isinstance(template, dict) else []
    return containers


# ---------------------------------------------------------------------------- image


def entrypoint_secrets() -> list[str]:
    text = (DEPLOY / "docker-entrypoint.sh").read_text()
    return re.search(r"^for name in (.+); do$", text, re.M).group(1).split()


def test_entrypoint_reads_every_secret_setting_from_a_file(tmp_path: Path) -> None:
    secret_settings = {s.env for s in SETTINGS if s.secret} | {"LLMLENS_CLICKHOUSE_URL"}
    assert set(entrypoint_secrets()) == secret_settings
    key = tmp_path / "key"
    key.write_text("a-key-of-at-least-16-characters\n")
    entrypoint = str(DEPLOY / "docker-entrypoint.sh")
    result = run(["env", "-i", "PATH=/usr/bin:/bin", f"LLMLENS_API_KEY_FILE={key}", "sh", entrypoint, "env"])
    assert result.returncode == 0, result.stderr
    assert "LLMLENS_API_KEY=a-key-of-at-least-16-characters\n" in result.stdout
    assert "LLMLENS_API_KEY_FILE" not in result.stdout
    missing = run(["env", "-i", f"LLMLENS_CLICKHOUSE_URL_FILE={tmp_path}/nope", "sh", entrypoint, "true"])
    assert missing.returncode == 2 and "LLMLENS_CLICKHOUSE_URL_FILE" in missing.stderr
    both = run(["env", "-i", f"LLMLENS_API_KEY_FILE={key}", "LLMLENS_API_KEY=x", "sh", entrypoint, "true"])
    assert both.returncode == 2 and "keep one" in both.stderr


def test_dockerfile_pins_its_base_and_installs_extras_that_exist() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and all(re.match(r"^python:\d+\.\d+\.\d+-slim-\w+$", b) for b in bases), bases
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installed = re.findall(r"'(?:\.|llmlens)\[([\w,]+)\]'", text)
    assert len(installed) == 2 and len(set(installed)) == 1, installed
    assert set(installed[0].split(",")) <= extras
    assert {"server", "demo"} <= set(installed[0].split(","))
    copied = re.findall(r"^COPY (?:--\S+ )*(\S+) ", text, re.M)
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for source in copied:
        assert f"!{source.rstrip('/')}" in ignore or f"!{source}" in ignore or f"!{source}/" in ignore, source


def test_cluster_prometheus_loads_the_rules_scrapes_the_servers_and_sends_to_the_evaluators_alertmanager() -> None:
    objects = kustomize("cluster")
    spec = by_kind(objects, "Prometheus")["llmlens"]["spec"]

    def selects(selector: dict[str, Any], obj: dict[str, Any]) -> bool:
        return selector["matchLabels"].items() <= obj["metadata"].get("labels", {}).items()

    rule = by_kind(objects, "PrometheusRule")["llmlens"]
    assert selects(spec["ruleSelector"], rule) and selects(spec["serviceMonitorSelector"],
                                                          by_kind(objects, "ServiceMonitor")["llmlens"])
    alerting = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert "HighErrorRate" in alerting
    # The evaluator's Alertmanager is the one Prometheus sends to (the operator's governing Service).
    evaluator = by_kind(objects, "Deployment")["llmlens-alert-evaluator"]
    env = {e["name"]: e.get("value") for e in evaluator["spec"]["template"]["spec"]["containers"][0]["env"]}
    [manager] = spec["alerting"]["alertmanagers"]
    assert env["LLMLENS_ALERTMANAGER_URL"] == f"http://{manager['name']}.{manager['namespace']}.svc:9093"
    assert manager["port"] == "web"
    # No instance or replica label on alerts: the same labels as the evaluator's.
    assert spec["prometheusExternalLabelName"] == "" and spec["replicaExternalLabelName"] == ""
    assert not spec.get("externalLabels")
    # Its service account may discover the server pods in the namespace.
    binding = by_kind(objects, "RoleBinding")["llmlens-prometheus"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": spec["serviceAccountName"],
                                    "namespace": "llmlens"}]
    role = by_kind(objects, "Role")[binding["roleRef"]["name"]]
    granted = {(resource, verb) for r in role["rules"] for resource in r["resources"] for verb in r["verbs"]}
    assert {("pods", "list"), ("endpoints", "watch"), ("services", "get")} <= granted
