"""docker-compose.yml is validated by Docker's own parser (no engine needed)."""
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


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
        capture_output=True, text=True, env=env, cwd=ROOT,
    )


def test_compose_file_is_valid_and_has_the_four_services():
    result = run_config({"POSTGRES_PASSWORD": "example", "SECRET_KEY": "example", "EMAIL_URL": "smtp://mail:25"})
    assert result.returncode == 0, result.stderr
    for service in ("web:", "worker:", "postgres:", "redis:"):
        assert service in result.stdout
    assert "redis://redis:6379/0" in result.stdout
    assert "postgres://portal:example@postgres:5432/portal" in result.stdout


def test_compose_refuses_to_start_without_secrets():
    result = run_config({})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr or "POSTGRES_PASSWORD" in result.stderr
