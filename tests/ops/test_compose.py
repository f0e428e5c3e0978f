"""docker-compose.yml is validated by Docker's own parser (no engine needed), and its shape checked:
which services run what, on which queue, after which others, with which volumes."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "POSTGRES_PASSWORD": "example-pg",
    "SECRET_KEY": "example-key",
    "S3_ACCESS_KEY": "example-access",
    "S3_SECRET_KEY": "example-secret",
    "EMAIL_URL": "smtp+tls://user:pass@mail.example.org:587",
}

pytestmark = pytest.mark.slow


def compose_command():
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("Neither 'docker compose' nor 'docker-compose' is installed; scripts/install.sh installs it.")


def run_config(env_overrides):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **env_overrides}
    return subprocess.run(
        [*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def config():
    result = run_config(SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_stack_has_every_service_with_a_healthcheck_where_it_serves(config):
    services = config["services"]
    assert set(services) == {
        "proxy",
        "migrate",
        "web",
        "worker-inference",
        "worker-light",
        "beat",
        "postgres",
        "redis",
        "seaweedfs",
    }
    for name in ("worker-inference", "worker-light", "postgres", "redis", "seaweedfs"):
        assert services[name]["healthcheck"]["test"], name
    assert "inspect ping" in " ".join(services["worker-inference"]["healthcheck"]["test"])
    assert services["proxy"]["ports"]


def test_only_the_tls_proxy_is_published_and_the_portal_trusts_exactly_that_hop(config):
    services = config["services"]
    assert {port["target"] for port in services["proxy"]["ports"]} == {80, 443}
    assert [name for name, service in services.items() if service.get("ports")] == ["proxy"]
    assert str(services["web"]["environment"]["TRUSTED_PROXY_COUNT"]) == "1"
    mounts = [
        volume if isinstance(volume, dict) else dict(zip(["source", "target"], volume.split(":")))
        for volume in services["proxy"]["volumes"]
    ]  # docker compose writes dicts, docker-compose 1.x strings
    caddyfile = next(mount for mount in mounts if mount["target"] == "/etc/caddy/Caddyfile")
    proxied = (ROOT / "deploy" / "Caddyfile").read_text()
    assert Path(caddyfile["source"]) == ROOT / "deploy" / "Caddyfile" and "reverse_proxy web:8000" in proxied
    assert (
        "trusted_proxies" not in proxied.split("{$PORTAL_HOST", 1)[1]
    )  # so Caddy overwrites a client's X-Forwarded-For


def test_model_work_and_light_work_run_on_separate_queues(config):
    services = config["services"]
    inference = services["worker-inference"]["command"]
    light = services["worker-light"]["command"]
    assert inference[inference.index("--queues") + 1] == "inference"
    assert light[light.index("--queues") + 1] == "default"
    assert services["worker-inference"]["environment"]["WORKER_TORCH_THREADS"]
    assert services["worker-inference"]["environment"]["CELERY_WORKER_CONCURRENCY"]
    assert services["beat"]["command"][3] == "beat"


def test_migrations_run_first_and_services_wait_for_what_they_need(config):
    services = config["services"]
    assert "migrate --noinput" in services["migrate"]["command"][-1]
    assert "prepare_storage" in services["migrate"]["command"][-1]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    for name in ("web", "worker-inference", "worker-light", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_secrets_and_storage_come_from_the_environment_and_data_lives_in_named_volumes(config):
    env = config["services"]["web"]["environment"]
    assert env["DATABASE_URL"] == "postgres://portal:example-pg@postgres:5432/portal"
    assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert env["AWS_STORAGE_BUCKET_NAME"] and env["AWS_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
    assert env["AWS_ACCESS_KEY_ID"] == "example-access" and env["SECRET_KEY"] == "example-key"
    assert set(config["volumes"]) == {"postgres-data", "redis-data", "object-data", "caddy-data", "caddy-config"}
    assert "ports" not in config["services"]["seaweedfs"]  # the bucket is reachable only by the portal


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing):
    result = run_config({key: value for key, value in SECRETS.items() if key != missing})
    assert result.returncode != 0
    assert missing in result.stderr


def test_env_example_names_every_required_secret():
    example = (ROOT / ".env.example").read_text()
    for name in SECRETS:
        assert f"\n{name}=" in example
