"""The test suite builds its own settings: a developer's .env or exported LOFT_* settings never leak in
(issue 9, point 20). The real .env of the checkout is never written: hostile files live in tmp_path."""
import os
import subprocess
import sys

from app import config
from app.config import ROOT

PROBE = "from app.config import Config, ENV_FILE; print(Config.WEBHOOKS_ALLOW_PRIVATE, ENV_FILE)"


def hostile_env(tmp_path):
    path = tmp_path / ".env"
    path.write_text("LOFT_WEBHOOKS_ALLOW_PRIVATE=true\n")
    return path


def run(code, env, cwd=ROOT):
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_test_run_reads_no_settings_file():
    assert os.environ["LOFT_DOTENV"] == "0"
    assert os.environ["FLASK_SKIP_DOTENV"] == "1"
    assert config.ENV_FILE is None
    assert config.Config.WEBHOOKS_ALLOW_PRIVATE is False


def test_a_settings_file_is_read_when_named_and_not_when_switched_off(tmp_path):
    path = hostile_env(tmp_path)
    assert run(PROBE, dict(os.environ, LOFT_DOTENV=str(path))) == f"True {path}"
    # What the tests' subprocesses (huey consumer, flask CLI) inherit: no file at all.
    assert run(PROBE, dict(os.environ)) == "False None"


def test_conftest_ignores_a_developers_env_file_and_exported_settings(tmp_path):
    """A developer's shell: a .env with a documented local setting, and the same setting exported.
    Loading the test configuration must leave both out."""
    path = hostile_env(tmp_path)
    developer = {k: v for k, v in os.environ.items() if k not in ("LOFT_DOTENV", "FLASK_SKIP_DOTENV")}
    developer.update(LOFT_DOTENV=str(path), LOFT_WEBHOOKS_ALLOW_PRIVATE="true", LOFT_HTTPS="true")
    out = run("import tests.conftest, os; from app.config import Config, ENV_FILE; "
              "print(Config.WEBHOOKS_ALLOW_PRIVATE, Config.HTTPS, ENV_FILE, os.environ.get('FLASK_SKIP_DOTENV'))",
              developer)
    assert out == "False False None 1"
