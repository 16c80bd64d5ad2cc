"""What an IT person runs to serve a school (``deploy/``): nginx's config is valid and matches the
Streamlit config, ``python -m deploy.serve`` refuses clearly without nginx and stops everything it
started on Ctrl-C or SIGTERM, and the compose file stays in step with it. The two replicas serving a
class through nginx: tests/test_school.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploy import serve
from tests.support.server import server_env

REPO = Path(__file__).resolve().parents[1]


def running_with(argument: str) -> list[int]:
    """The processes whose command line holds ``argument`` (NUL-separated, as /proc writes it)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if argument.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:  # the process ended while we looked
            continue
    return found


TCP_LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


def listening(port: int) -> bool:
    """Whether a socket listens on ``port``, as the kernel's tables say. Neither binding (an outgoing
    connection of another test using the port as its local end refuses the bind too) nor connecting
    (a connect() to a free ephemeral port can, rarely, connect to itself) tells that alone."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def stops_listening(port: int, within: float = 5.0) -> bool:
    """Whether nothing listens on ``port`` within ``within`` seconds."""
    deadline = time.monotonic() + within
    while listening(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_the_rendered_nginx_config_is_valid_and_limits_uploads_like_streamlit(nginx, tmp_path):
    text = serve.render_nginx_conf("127.0.0.1:18080", ["127.0.0.1:18101", "127.0.0.1:18102"], tmp_path)
    assert "{{" not in text
    (tmp_path / "nginx.conf").write_text(text)
    checked = subprocess.run([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log"), "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    limit = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert f"client_max_body_size {limit + 1}m;" in text
    assert text.count("        server 127.0.0.1:181") == 2 and "proxy_set_header Upgrade $http_upgrade;" in text


def test_serve_refuses_without_nginx_and_names_the_package(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(serve, "nginx_binary", lambda: None)
    assert serve.main(["--replicas", "1", "--port", str(serve.free_port()), "--log-dir", str(tmp_path)]) == 2
    assert "apt-get install nginx" in capsys.readouterr().err


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_serve_stops_nginx_and_its_replicas(nginx, stop, tmp_path_factory, tmp_path):
    port, first = serve.free_port(), serve.free_port_run(1)
    env = {**os.environ, **server_env(tmp_path_factory.getbasetemp(), BEANGUARD_RUNS_DIR=str(tmp_path / "runs"))}
    command = [sys.executable, "-m", "deploy.serve", "--replicas", "1", "--port", str(port), "--address", "127.0.0.1", "--first-port", str(first), "--log-dir", str(tmp_path / "logs")]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not serve.healthy(f"127.0.0.1:{port}"):
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read() if process.poll() is not None else "not serving"
            time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as answer:
            assert answer.headers["X-Beanguard-Replica"] == f"127.0.0.1:{first}"
        process.send_signal(stop)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not running_with(f"-p\0{tmp_path / 'logs'}\0") and not running_with(f"--server.port\0{first}\0")  # nginx and the replica are gone
    assert stops_listening(port) and stops_listening(first)  # and nginx's workers with them
    assert "Stopping nginx and the replicas" in process.stdout.read()


def test_the_compose_file_serves_the_same_school_as_serve():
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    apps = sorted(name for name, service in services.items() if service.get("image") == "beanguard" and "command" not in service)
    assert len(apps) >= 2 and {"nginx", "db"} <= set(services)
    command = services["nginx"]["command"]
    assert command[:3] == ["python", "-m", "deploy.serve"]
    assert command[command.index("--upstream") + 1].split(",") == [f"{app}:8501" for app in apps]  # nginx in front of every replica
    environments = [services[app]["environment"] for app in apps]
    assert all(environment == environments[0] for environment in environments)  # the same store, passcode and cookie secret
    assert environments[0]["BEANGUARD_STORE_URL"].startswith("postgresql+psycopg2://") and "@db:" in environments[0]["BEANGUARD_STORE_URL"]
    assert serve.COOKIE_SECRET_ENV in environments[0]
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "nginx" in dockerfile and "dashboard/app.py" in dockerfile
