"""The chart's rendered manifests: replicas, probes, secrets, the migration hook, scaling.

Each scenario of helm/meterflow/ci is rendered with the pinned helm; kubeconform's schema
check runs in scripts/chart-check.sh. These tests check what a schema cannot: that the
manifests do what MeterFlow needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from meterflow.cli import _register, app
from tests.helm.conftest import (
    CHART,
    SCENARIOS,
    Manifest,
    Render,
    RenderError,
    by_name,
    config_data,
    helm_template,
    kinds,
    pod_spec,
    stage_chart,
)

MINIMAL = CHART / "ci" / "minimal-external-values.yaml"
BUNDLED = CHART / "ci" / "bundled-values.yaml"
HA = CHART / "ci" / "ha-values.yaml"
IDENTITIES = CHART / "ci" / "device-identities-values.yaml"
scenarios = pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)


def deployments(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {m["metadata"]["labels"]["app.kubernetes.io/component"]: m
            for m in kinds(manifests, "Deployment")}


def meterflow_containers(manifests: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    """(component, container) of every MeterFlow Deployment's main containers."""
    return [(name, c) for name, d in deployments(manifests).items() if name != "mosquitto"
            for c in pod_spec(d)["containers"]]


# --- replicas and scaling -------------------------------------------------------------


def test_replicas_follow_the_values(render: Render) -> None:
    values = yaml.safe_load(BUNDLED.read_text())
    found = deployments(render(BUNDLED))
    assert found["processor"]["spec"]["replicas"] == values["processor"]["replicaCount"] == 2
    assert found["sink"]["spec"]["replicas"] == values["sink"]["replicaCount"] == 1
    changed = deployments(render(BUNDLED, sets=["processor.replicaCount=5",
                                               "sink.replicaCount=3"]))
    assert (changed["processor"]["spec"]["replicas"], changed["sink"]["spec"]["replicas"]) == (5, 3)


@scenarios
def test_exactly_one_dispatcher_replaced_by_recreate(render: Render, scenario: Path) -> None:
    dispatcher = deployments(render(scenario))["dispatcher"]
    assert dispatcher["spec"]["replicas"] == 1
    assert dispatcher["spec"]["strategy"] == {"type": "Recreate"}
    hpas = [h["spec"]["scaleTargetRef"]["name"] for h in kinds(render(scenario),
                                                                "HorizontalPodAutoscaler")]
    assert dispatcher["metadata"]["name"] not in hpas


def test_dispatcher_replicas_cannot_be_set(render: Render) -> None:
    with pytest.raises(RenderError, match="replicaCount"):
        render(MINIMAL, sets=["dispatcher.replicaCount=2"])


def test_pollers_run_once_per_protocol(render: Render) -> None:
    found = deployments(render(HA))
    for protocol in ("modbus", "dlt645", "cjt188"):
        poller = found[f"poll-{protocol}"]
        assert poller["spec"]["replicas"] == 1
        assert pod_spec(poller)["containers"][0]["args"][:2] == ["connect", protocol]
    args = pod_spec(found["poll-cjt188"])["containers"][0]["args"]
    assert args[2:] == ["--interval", "900", "--timeout", "5"]
    assert not any(name.startswith("poll-") for name in deployments(render(MINIMAL)))


def test_mqtt_bridges_share_the_subscription_only_when_several(render: Render) -> None:
    single = pod_spec(deployments(render(MINIMAL))["connect-mqtt"])["containers"][0]["args"]
    many = deployments(render(HA))["connect-mqtt"]
    assert single == ["connect", "mqtt"]
    assert many["spec"]["replicas"] == 3
    assert pod_spec(many)["containers"][0]["args"] == [
        "connect", "mqtt", "--share-group", "meterflow-bridge"]


@scenarios
def test_autoscaled_consumers_never_exceed_the_partitions(render: Render, scenario: Path
                                                          ) -> None:
    manifests = render(scenario)
    partitions = int(config_data(manifests)["METERFLOW_TOPIC_PARTITIONS"])
    found = deployments(manifests)
    for hpa in kinds(manifests, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        component = next(n for n, d in found.items() if d["metadata"]["name"] == target)
        assert "replicas" not in found[component]["spec"]  # the HPA owns the count
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        if component in ("processor", "sink"):
            assert hpa["spec"]["maxReplicas"] <= partitions
    for component in ("processor", "sink"):
        assert found[component]["spec"].get("replicas", 0) <= partitions


def test_ha_scenario_autoscales_processors_up_to_the_partitions(render: Render) -> None:
    manifests = render(HA)
    hpa = by_name(manifests, "HorizontalPodAutoscaler", "-processor")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (6, 24)
    assert config_data(manifests)["METERFLOW_TOPIC_PARTITIONS"] == "24"
    # a rebalance per change: processors scale down one pod at a time, slowly
    assert hpa["spec"]["behavior"]["scaleDown"]["policies"] == [
        {"type": "Pods", "value": 1, "periodSeconds": 300}]


@pytest.mark.parametrize("setting", [
    "processor.autoscaling.maxReplicas=5", "sink.autoscaling.maxReplicas=5"])
def test_autoscaling_past_the_partitions_is_refused(render: Render, setting: str) -> None:
    component = setting.split(".")[0]
    with pytest.raises(RenderError, match=rf"{component}.autoscaling.maxReplicas \(5\) exceeds "
                                          r"settings.topicPartitions \(4\)"):
        render(MINIMAL, sets=[f"{component}.autoscaling.enabled=true", setting])
    # at the partition count it renders
    render(MINIMAL, sets=[f"{component}.autoscaling.enabled=true",
                          setting.replace("=5", "=4")])


def test_more_replicas_than_partitions_are_refused(render: Render) -> None:
    with pytest.raises(RenderError, match=r"processor.replicaCount \(5\) exceeds"):
        render(MINIMAL, sets=["processor.replicaCount=5"])


def test_disruption_budgets_cover_the_scaled_components(render: Render) -> None:
    budgets = {p["metadata"]["name"]: p for p in kinds(render(HA), "PodDisruptionBudget")}
    assert set(budgets) == {"meterflow-processor", "meterflow-sink", "meterflow-api"}
    for pdb in budgets.values():
        assert pdb["spec"]["maxUnavailable"] == 1
        component = pdb["metadata"]["name"].removeprefix("meterflow-")
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component
    assert kinds(render(MINIMAL), "PodDisruptionBudget") == []  # single replicas: no budget


def test_ha_spreads_each_component_over_zones_and_nodes(render: Render) -> None:
    for component, deployment in deployments(render(HA)).items():
        constraints = pod_spec(deployment)["topologySpreadConstraints"]
        assert [c["topologyKey"] for c in constraints] == [
            "topology.kubernetes.io/zone", "kubernetes.io/hostname"]
        for c in constraints:
            assert c["whenUnsatisfiable"] == "DoNotSchedule"
            assert c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
    assert all("topologySpreadConstraints" not in pod_spec(d)
               for d in deployments(render(MINIMAL)).values())


def test_the_commit_interval_reaches_the_processors(render: Render) -> None:
    assert config_data(render(HA))["METERFLOW_COMMIT_INTERVAL_S"] == "1"
    assert config_data(render(MINIMAL))["METERFLOW_COMMIT_INTERVAL_S"] == "0.25"


def test_processors_and_sinks_run_apart(render: Render) -> None:
    found = deployments(render(MINIMAL))
    assert pod_spec(found["processor"])["containers"][0]["args"][:3] == [
        "worker", "--role", "processor"]
    assert pod_spec(found["sink"])["containers"][0]["args"][:3] == ["worker", "--role", "sink"]


# --- probes, ports, security ----------------------------------------------------------


HEALTH = {  # component -> (setting that sets its port, health path)
    "processor": ("METERFLOW_WORKER_WEB_PORT", "/health"),
    "sink": ("METERFLOW_WORKER_WEB_PORT", "/health"),
    "api": ("METERFLOW_API_PORT", "/api/v1/health"),
}


@scenarios
def test_every_container_has_probes_on_the_port_its_service_listens(
        render: Render, scenario: Path) -> None:
    manifests = render(scenario)
    config = config_data(manifests)
    assert config["METERFLOW_WORKER_WEB_HOST"] == config["METERFLOW_HEALTH_HOST"] == "0.0.0.0"
    checked = 0
    for name, deployment in deployments(manifests).items():
        for container in pod_spec(deployment)["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = container[kind]
                action = probe.get("httpGet") or probe.get("tcpSocket")
                assert action is not None, f"{name}: {kind} has no check"
                assert action["port"] in ports, f"{name}: {kind} on an unknown port"
                if name == "mosquitto":
                    continue
                setting, path = HEALTH.get(name, ("METERFLOW_HEALTH_PORT", "/health"))
                assert ports[action["port"]] == int(config[setting]), f"{name}: {kind} port"
                assert probe["httpGet"]["path"] == path
            checked += 1
    assert checked >= 7


@scenarios
def test_containers_are_non_root_read_only_and_bounded(render: Render, scenario: Path) -> None:
    manifests = render(scenario)
    pods = [pod_spec(m) for m in kinds(manifests, "Deployment") + kinds(manifests, "Job")]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod.get("automountServiceAccountToken") is False
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]


def test_every_meterflow_command_exists_with_its_options(render: Render) -> None:
    """The arguments the chart passes parse with the real command line (no typo survives)."""
    _register()
    root = typer.main.get_command(app)
    seen = set()
    for scenario in SCENARIOS:
        manifests = render(scenario)
        pods = [pod_spec(m) for m in kinds(manifests, "Deployment") + kinds(manifests, "Job")]
        for pod in pods:
            for container in pod["containers"] + pod.get("initContainers", []):
                if "command" in container:  # the bundled broker's own image
                    continue
                args = [str(a) for a in container["args"]]
                command: Any = root
                ctx = root.make_context("meterflow", [args[0]], resilient_parsing=True)
                while hasattr(command, "get_command"):  # a group: descend
                    name, args = args[0], args[1:]
                    found = command.get_command(ctx, name)
                    assert found is not None, f"no command {name!r} in {container['args']}"
                    command = found
                command.make_context(command.name or "", list(args), parent=ctx)
                seen.add(" ".join(str(a) for a in container["args"][:2]))
    assert {"worker --role", "relay --loglevel", "dispatch", "db wait", "db migrate",
            "topics create", "connect mqtt", "connect modbus", "api", "notifier"} <= seen


# --- secrets --------------------------------------------------------------------------


SECRET_VALUES = ["db-pass-4f1b", "mqtt-pass-77ab", "sms-key-c0ffee"]


def test_secret_values_never_reach_a_config_map_or_an_inline_env(render: Render) -> None:
    manifests = render(BUNDLED, sets=[
        "timescaledb.enabled=false", "externalDatabase.host=db.example.internal",
        f"externalDatabase.password={SECRET_VALUES[0]}",
        f"externalMqtt.password={SECRET_VALUES[1]}",
        f"secretEnv.METERFLOW_SMS_ACCESS_KEY={SECRET_VALUES[2]}"])
    for manifest in manifests:
        text = yaml.safe_dump(manifest)
        if manifest["kind"] == "Secret":
            continue
        for value in SECRET_VALUES:
            assert value not in text, f"{manifest['kind']} {manifest['metadata']['name']}"
    secrets = {s["metadata"]["name"]: s for s in kinds(manifests, "Secret")}
    assert secrets["meterflow-secrets"]["stringData"] == {
        "METERFLOW_PG_PASSWORD": SECRET_VALUES[0], "METERFLOW_MQTT_PASSWORD": SECRET_VALUES[1],
        "METERFLOW_SMS_ACCESS_KEY": SECRET_VALUES[2]}
    for cm in kinds(manifests, "ConfigMap"):
        for key in cm["data"]:
            assert not any(word in key.upper() for word in ("PASSWORD", "DSN", "TOKEN", "KEY"))


@scenarios
def test_config_maps_hold_no_secret_settings(render: Render, scenario: Path) -> None:
    values = yaml.safe_load(scenario.read_text())
    secrets = [values.get(k, {}).get("password") for k in ("externalDatabase", "externalMqtt")]
    secrets += [str(v) for v in values.get("secretEnv", {}).values()]
    for cm in kinds(render(scenario), "ConfigMap"):
        text = yaml.safe_dump(cm["data"])
        for key in cm["data"]:
            assert not any(word in key.upper() for word in ("PASSWORD", "DSN", "TOKEN")), key
        for secret in filter(None, secrets):
            assert secret not in text, cm["metadata"]["name"]


def test_an_existing_secret_replaces_the_charts(render: Render) -> None:
    manifests = render(HA)
    assert kinds(manifests, "Secret") == []
    for _name, container in meterflow_containers(manifests):
        refs = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
        assert refs == ["meterflow-credentials"]
    job = by_name(manifests, "Job", "-migrate")
    for container in pod_spec(job)["containers"] + pod_spec(job)["initContainers"]:
        assert container["envFrom"] == [{"secretRef": {"name": "meterflow-credentials"}}]


def test_a_missing_password_is_named(render: Render) -> None:
    with pytest.raises(RenderError, match=r"externalDatabase\.password"):
        render(MINIMAL, sets=["externalDatabase.password="])


def test_the_bundled_database_password_comes_from_its_own_secret(render: Render) -> None:
    manifests = render(BUNDLED)
    for _name, container in meterflow_containers(manifests):
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["METERFLOW_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "meterflow-credentials", "key": "PATRONI_SUPERUSER_PASSWORD"}
    assert "METERFLOW_PG_PASSWORD" not in by_name(manifests, "Secret", "-secrets")["stringData"]


def test_changing_a_secret_rolls_the_pods(render: Render) -> None:
    def checksums(password: str) -> dict[str, str]:
        found = deployments(render(MINIMAL, sets=[f"externalMqtt.password={password}"]))
        return {n: d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
                for n, d in found.items()}

    first, second = checksums("one"), checksums("two")
    assert all(first[n] != second[n] for n in first)


# --- the migration job ------------------------------------------------------------------


def test_migrations_run_as_a_hook_before_the_release_starts(render: Render) -> None:
    manifests = render(MINIMAL)
    job = by_name(manifests, "Job", "-migrate")
    notes = job["metadata"]["annotations"]
    assert set(notes["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert set(notes["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation", "hook-succeeded"}
    hook_secret = by_name(manifests, "Secret", "-migrate")
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == notes["helm.sh/hook"]
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        notes["helm.sh/hook-weight"])
    # Helm creates pre-install hooks before every other resource: the Job may use nothing
    # of the release (ConfigMap, Secret, ServiceAccount) but its own hook Secret
    pod = pod_spec(job)
    assert "serviceAccountName" not in pod
    steps = pod["initContainers"] + pod["containers"]
    assert [c["args"][:3] for c in steps] == [
        ["topics", "create", "--wait"], ["db", "migrate", "--wait"]]
    for container in steps:
        assert container["envFrom"] == [{"secretRef": {"name": "meterflow-migrate"}}]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["METERFLOW_SQL_DIR"] == "/app/sql"
        assert env["METERFLOW_KAFKA_BOOTSTRAP"].startswith("kafka-0.kafka.example.internal")
    assert pod["restartPolicy"] == "Never"
    # the release's own resources are no hooks: they come after the Job
    for manifest in manifests:
        if manifest is not job and manifest is not hook_secret:
            assert "helm.sh/hook" not in manifest["metadata"].get("annotations", {})


def test_bundled_services_move_the_first_run_after_install(render: Render) -> None:
    job = by_name(render(BUNDLED), "Job", "-migrate")
    assert set(job["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {
        "post-install", "pre-upgrade"}
    forced = by_name(render(BUNDLED, sets=["migrations.hook=pre"]), "Job", "-migrate")
    assert forced["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"


@scenarios
def test_every_component_waits_for_the_schema(render: Render, scenario: Path) -> None:
    for name, deployment in deployments(render(scenario)).items():
        if name == "mosquitto":
            continue
        init = pod_spec(deployment)["initContainers"]
        assert [c["args"][:2] for c in init] == [["db", "wait"]], name


def test_migrations_can_be_left_to_the_operator(render: Render) -> None:
    manifests = render(MINIMAL, sets=["migrations.enabled=false"])
    assert kinds(manifests, "Job") == []
    assert all(pod_spec(d)["initContainers"] for d in deployments(manifests).values())


# --- API, broker, boards ------------------------------------------------------------


def test_api_service_and_ingress_route_to_the_api_pods(render: Render) -> None:
    manifests = render(HA)
    service = by_name(manifests, "Service", "-api")
    api = deployments(manifests)["api"]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    ingress = by_name(manifests, "Ingress", "-api")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["secretName"] == "meterflow-api-tls"
    assert kinds(render(MINIMAL), "Ingress") == []


def test_bundled_broker_denies_anonymous_and_uses_the_secret(render: Render) -> None:
    manifests = render(BUNDLED)
    conf = by_name(manifests, "ConfigMap", "-mosquitto")["data"]["mosquitto.conf"]
    assert "allow_anonymous false" in conf
    broker = deployments(manifests)["mosquitto"]
    init = pod_spec(broker)["initContainers"][0]
    password = next(e for e in init["env"] if e["name"] == "METERFLOW_MQTT_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"]["name"] == "meterflow-secrets"
    config = config_data(manifests)
    assert config["METERFLOW_MQTT_HOST"] == "meterflow-mosquitto"
    assert int(config["METERFLOW_MQTT_PORT"]) == by_name(
        manifests, "Service", "-mosquitto")["spec"]["ports"][0]["port"]


def test_bundled_broker_with_device_identities_syncs_from_the_database(
        render: Render) -> None:
    """A user per device and platform role with an ACL: the sidecar renders the files from
    the database and signals the broker, whose pid it sees in the shared namespace."""
    manifests = render(IDENTITIES)
    conf = by_name(manifests, "ConfigMap", "-mosquitto")["data"]["mosquitto.conf"]
    assert "acl_file /mosquitto/auth/acl" in conf and "allow_anonymous false" in conf
    pid_file = next(line.split()[1] for line in conf.splitlines()
                    if line.strip().startswith("pid_file"))
    pod = pod_spec(deployments(manifests)["mosquitto"])
    assert pod["shareProcessNamespace"] is True
    broker, sync = pod["containers"]
    assert sync["name"] == "broker-sync" and sync["args"][:2] == ["broker", "sync"]
    assert sync["args"][sync["args"].index("--pid-file") + 1] == pid_file
    auth = sync["args"][sync["args"].index("--dir") + 1]
    mounts = {c["name"]: {m["mountPath"]: m for m in c["volumeMounts"]}
              for c in (broker, sync)}
    assert mounts["broker-sync"][auth].get("readOnly") is not True
    assert mounts["mosquitto"][auth]["readOnly"] is True
    assert mounts["mosquitto"][str(Path(pid_file).parent)]["name"] == \
        mounts["broker-sync"][str(Path(pid_file).parent)]["name"]
    init = pod["initContainers"][0]
    assert init["args"] == ["broker", "sync", "--once", "--dir", auth]
    # the bridge and the dispatcher use their own users; the bridge checks identities
    config = config_data(manifests)
    assert "METERFLOW_MQTT_USER" not in config
    assert config["METERFLOW_MQTT_IDENTITY_CHECK"] == "true"
    secret = by_name(manifests, "Secret", "-secrets")["stringData"]
    assert "METERFLOW_MQTT_PASSWORD" not in secret
    assert {"METERFLOW_MQTT_BRIDGE_PASSWORD", "METERFLOW_MQTT_DISPATCHER_PASSWORD",
            "METERFLOW_MQTT_MONITOR_PASSWORD"} <= set(secret)


def test_device_identities_name_a_missing_platform_password(render: Render) -> None:
    with pytest.raises(RenderError, match=r"secretEnv\.METERFLOW_MQTT_BRIDGE_PASSWORD"):
        render(BUNDLED, sets=["mosquitto.deviceIdentities.enabled=true"])


def test_the_single_user_broker_keeps_the_bridge_check_off(render: Render) -> None:
    config = config_data(render(BUNDLED))
    assert config["METERFLOW_MQTT_USER"] == "meterflow"
    assert config["METERFLOW_MQTT_IDENTITY_CHECK"] == "false"


def test_bundled_addresses_name_the_dependencies_services(render: Render) -> None:
    config = config_data(render(BUNDLED))
    assert config["METERFLOW_KAFKA_BOOTSTRAP"] == "meterflow-kafka:9092"
    assert config["METERFLOW_PG_HOST"] == "meterflow"
    with pytest.raises(RenderError, match="not both"):
        render(BUNDLED, sets=["externalKafka.bootstrap=k:9092"])


def test_datasource_names_the_password_only_as_a_variable(render: Render) -> None:
    cm = by_name(render(BUNDLED), "ConfigMap", "-datasource")
    assert cm["metadata"]["labels"]["grafana_datasource"] == "1"
    source = yaml.safe_load(cm["data"]["meterflow-datasource.yaml"])["datasources"][0]
    assert source["secureJsonData"] == {"password": "${METERFLOW_PG_PASSWORD}"}
    assert source["jsonData"]["timescaledb"] is True
    assert source["uid"] == "meterflow-timescaledb"


def test_boards_in_the_chart_become_a_sidecar_config_map(tmp_path: Path) -> None:
    chart = stage_chart(tmp_path)
    board = {"uid": "mf-test", "title": "Test board", "panels": []}
    (chart / "files" / "dashboards" / "test-board.json").write_text(
        yaml.safe_dump(board, default_flow_style=True))
    manifests = helm_template(chart, [CHART / "ci" / "bundled-values.yaml"])
    cm = by_name(manifests, "ConfigMap", "-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "MeterFlow"
    assert yaml.safe_load(cm["data"]["test-board.json"]) == board
    # without boards no empty ConfigMap is rendered
    for path in (chart / "files" / "dashboards").glob("*.json"):
        path.unlink()
    assert not [m for m in kinds(helm_template(chart, [MINIMAL]), "ConfigMap")
                if m["metadata"]["name"].endswith("-dashboards")]


def test_notifier_configuration_is_mounted_and_names_its_secrets_only(render: Render) -> None:
    manifests = render(HA)
    cm = by_name(manifests, "ConfigMap", "-notifier")
    config = yaml.safe_load(cm["data"]["notify.yaml"])
    assert config["channels"]["email"]["password_env"] == "METERFLOW_SMTP_PASSWORD"
    notifier = deployments(manifests)["notifier"]
    container = pod_spec(notifier)["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "notify-config")
    assert env["METERFLOW_NOTIFY_CONFIG"] == f"{mount['mountPath']}/notify.yaml"
    volume = next(v for v in pod_spec(notifier)["volumes"] if v["name"] == "notify-config")
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    # no configuration: defaults, nothing mounted
    plain = pod_spec(deployments(render(MINIMAL))["notifier"])["containers"][0]
    assert "env" not in plain
    assert [m["name"] for m in plain["volumeMounts"]] == ["tmp", "state"]


def test_the_notifier_configuration_loads_with_the_notifiers_own_reader(
        render: Render, tmp_path: Path) -> None:
    """What the chart mounts is a configuration the notifier accepts."""
    from connectors.notify.config import load_config

    cm = by_name(render(HA), "ConfigMap", "-notifier")
    path = tmp_path / "notify.yaml"
    path.write_text(cm["data"]["notify.yaml"])
    config = load_config(path)
    assert config.channels.email is not None and config.channels.email.port == 587
    assert set(config.channels.webhook) == {"ops"}


def test_payments_run_the_settle_service_with_the_merchant_keys(render: Render) -> None:
    found = deployments(render(HA))
    settle = found["settle"]
    assert settle["spec"]["replicas"] == 2
    [container] = pod_spec(settle)["containers"]
    assert container["args"] == ["pay", "settle"]
    for pod in (pod_spec(settle), pod_spec(found["api"])):
        [keys] = [v for v in pod["volumes"] if v["name"] == "pay-keys"]
        assert keys["secret"] == {"secretName": "meterflow-pay-keys", "defaultMode": 256}
        [mount] = [m for c in pod["containers"] for m in c["volumeMounts"]
                   if m["name"] == "pay-keys"]
        assert mount == {"name": "pay-keys", "mountPath": "/etc/meterflow/pay", "readOnly": True}
    assert "settle" not in deployments(render(BUNDLED))
