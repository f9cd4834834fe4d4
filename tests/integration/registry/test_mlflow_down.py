"""MLflow goes down in the middle of a registration: the client retries with backoff on I/O
only, then the tracker fails with a clear message naming the server, and no model version
holds an alias that it did not completely earn.

The fault is a network partition, injected by a TCP relay between the tracker and the real
MLflow server of the session: it forwards every byte until the client asks to move the alias
(the last step of a registration), then drops that connection and refuses every new one, as a
dead server would. The registry itself is then read directly, past the relay.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from pathlib import Path

import pytest

from tests import kit
from vsearch.model.export import save_model
from vsearch.settings import load_settings
from vsearch.tracking.tracker import TrackingUnavailable, TrainingTracker

pytestmark = pytest.mark.integration

CUT_ON = b"/registered-models/alias"  # the alias request: the registration's last step
RETRIES = 2


class Partition:
    """A TCP relay to ``upstream`` that can be cut: afterwards connections are refused."""

    def __init__(self, upstream: tuple[str, int], cut_on: bytes) -> None:
        self.upstream = upstream
        self.cut_on = cut_on
        self.cut = threading.Event()
        self.refused = 0  # connections turned away after the cut (the client's retries)
        self.requests = 0  # request lines relayed to the server
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.cut.is_set():
                self.refused += 1
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool) -> None:
        try:
            while data := src.recv(65536):
                if to_server and (self.cut.is_set() or self.cut_on in data):
                    self.cut.set()  # the request never reaches the server
                    break
                if to_server:
                    self.requests += data.count(b" HTTP/1.1\r\n")
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self.server.close()


def test_mlflow_down_mid_registration_fails_clearly_and_no_alias_moves(
    mlflow_server: str, params_path: Path, tmp_path: Path
) -> None:
    import mlflow

    settings = load_settings(params_path)
    name = f"faults-{uuid.uuid4().hex[:8]}"
    settings.registry.model_name = name
    settings.registry.http_retries = RETRIES
    settings.registry.http_backoff_factor = 1
    model_dir = tmp_path / "run" / "model"
    save_model(kit.tiny_net(), model_dir, {"name": name, "version": "0"})
    host, port = mlflow_server.removeprefix("http://").split(":")
    relay = Partition((host, int(port)), CUT_ON)
    client = mlflow.MlflowClient(mlflow_server, registry_uri=mlflow_server)  # past the relay
    try:
        tracker = TrainingTracker(
            settings,
            label_source="clicks",
            run_folder=tmp_path / "run",
            tracking_uri=relay.url,
            repo_root=Path.cwd(),
        )
        with pytest.raises(TrackingUnavailable) as caught, tracker as tr:
            tr.log_model(model_dir, {"loss": 1.0})
    finally:
        relay.close()
        mlflow.set_tracking_uri(mlflow_server)

    message = str(caught.value)
    assert relay.url in message and "vsearch services up" in message
    assert f"{RETRIES} retries" in message
    assert relay.cut.is_set() and relay.refused >= RETRIES  # I/O failures were retried
    versions = client.search_model_versions(f"name='{name}'")
    assert len(versions) == 1  # registered (the step before the cut) ...
    assert not client.get_registered_model(name).aliases  # ... but no alias points at it
    assert not (tmp_path / "run" / "mlflow_run.json").exists()  # nothing claims success

    # A 4xx is an answer, not an I/O failure: no retry, at once.
    relay2 = Partition((host, int(port)), b"never")
    try:
        from mlflow.exceptions import MlflowException

        with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|not found"):
            mlflow.MlflowClient(relay2.url).get_model_version(name, "999")
        assert relay2.requests == 1  # asked once: a 404 is final
    finally:
        relay2.close()
