"""Environment shared by the processes we start and the clients that talk to them.

Why one module: the launchers (:mod:`vsearch.local.servers`, :mod:`vsearch.local.deployment`,
:mod:`vsearch.local.service`), the search service itself (it reads :data:`PARAMS_ENV` and
:data:`ROOT_ENV`), DVC calls and the test suite all need the same variable names and the same
telemetry switches; defining them once keeps launcher and launched in agreement. Nothing here
starts a process.
"""

from __future__ import annotations

import os
from pathlib import Path

from vsearch.settings import ServicesSettings, Settings

TELEMETRY_OFF: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
}
PARAMS_ENV = "VSEARCH_PARAMS"  # the params file (relative to the root), read by the service
ROOT_ENV = "VSEARCH_ROOT"  # the project root relative settings paths resolve against
READY_PATH = "/readyz"  # the service answers 200 once a pipeline is loaded
LIVE_PATH = "/livez"  # the service answers 200 once its server is up (also without a release)


def state_dir(settings: ServicesSettings) -> Path:
    """Absolute folder for the local processes' state files, logs and databases."""
    return settings.state_dir.resolve()


def mlflow_uris(settings: ServicesSettings) -> tuple[str, str]:
    """Absolute backend-store and artifact URIs (relative sqlite URIs break on ``cd``)."""
    root = state_dir(settings) / "mlflow"
    backend = settings.mlflow.backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
    artifacts = settings.mlflow.artifact_root or (root / "artifacts").as_uri()
    return backend, artifacts


def prefect_env(settings: ServicesSettings) -> dict[str, str]:
    """Environment for the Prefect server *and* its clients: own PREFECT_HOME, SQLite, API URL."""
    home = state_dir(settings) / "prefect"
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": prefect_api_url(settings),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
    }
    if not settings.prefect.api_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
    return env


def prefect_api_url(settings: ServicesSettings) -> str:
    """The configured Prefect API, else the local server's."""
    p = settings.prefect
    return p.api_url or f"http://{p.host}:{p.port}/api"


def mlflow_tracking_uri(settings: ServicesSettings) -> str:
    """The configured MLflow tracking URI, else the local server's."""
    m = settings.mlflow
    return m.tracking_uri or f"http://{m.host}:{m.port}"


def client_env(settings: ServicesSettings) -> dict[str, str]:
    """Variables a client process (flow, trainer, test) needs to talk to the services."""
    env = dict(TELEMETRY_OFF)
    env.update(prefect_env(settings))
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    env["MLFLOW_TRACKING_URI"] = mlflow_tracking_uri(settings)
    return env


def apply_client_env(settings: ServicesSettings) -> dict[str, str]:
    """Export :func:`client_env` into this process (before Prefect/MLflow clients are used)."""
    env = client_env(settings)
    os.environ.update(env)
    return env


ADMIN_TOKEN_FILE = "admin_token"  # under services.state_dir, mode 0600


def admin_token(settings: Settings) -> str:
    """The local admin bearer token, exported into this process's environment.

    The variable ``serving.admin_token_env`` when set, else a secret made once and kept 0600
    under ``services.state_dir``: the demo's service, the promotion flow's reload and
    ``vsearch services up`` (restarting the service) share it.
    """
    import secrets

    env = settings.serving.admin_token_env
    if os.environ.get(env):
        return os.environ[env]
    path = settings.services.state_dir / ADMIN_TOKEN_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    os.environ[env] = path.read_text().strip()
    return os.environ[env]
