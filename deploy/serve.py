"""Serve a school on one address: N Streamlit replicas on consecutive ports and nginx in front of them.

    python -m deploy.serve --replicas 2 --port 8501                  # students open http://<this machine>:8501
    python -m deploy.serve --replicas 3 --store-url postgresql://beanguard:PW@db-host/beanguard
    python -m deploy.serve --upstream app1:8501,app2:8501 --port 8080  # nginx only (deploy/compose.yaml)

Every replica gets the same checkpoints, data, runs folder, class store and cookie secret (so a
student moved to another replica keeps a valid upload token); the class store is where they meet
(``core.classroom``). nginx runs as a child of this command, not as a daemon, with a config
rendered from ``deploy/nginx.conf`` into a temporary folder (its ``-p`` prefix: pid, logs and temp
files live there), so no root is needed. Ctrl-C or SIGTERM stops nginx, then every replica.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "nginx.conf"
STREAMLIT_CONFIG = REPO / ".streamlit" / "config.toml"
NGINX_MISSING = "nginx is not installed (Debian/Ubuntu: `apt-get install nginx`); deploy.serve runs it in front of the replicas."
COOKIE_SECRET_ENV = "STREAMLIT_SERVER_COOKIE_SECRET"
STORE_URL_ENV = "BEANGUARD_STORE_URL"
HEALTH_TIMEOUT_S = 180.0  # a replica imports TensorFlow and loads the models before it answers
FAIL_TIMEOUT_S = 10


class ServeError(RuntimeError):
    """The school cannot be served; the message says why in one sentence."""


def nginx_binary() -> str | None:
    """The nginx executable on PATH (Debian puts it in /usr/sbin, not always on a user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/local/nginx/sbin")


def upload_limit_mb(config_toml: Path = STREAMLIT_CONFIG) -> int:
    """``server.maxUploadSize`` of the Streamlit config (Streamlit's default, 200 MB, when unset)."""
    try:
        return int(tomllib.loads(config_toml.read_text(encoding="utf-8")).get("server", {}).get("maxUploadSize", 200))
    except (OSError, tomllib.TOMLDecodeError, ValueError):
        return 200


def render_nginx_conf(listen: str, upstreams: Sequence[str], prefix: Path, upload_mb: int | None = None, template: Path = TEMPLATE) -> str:
    """``deploy/nginx.conf`` with its placeholders filled in: ``listen`` (``port`` or ``address:port``),
    one upstream server per ``host:port`` in ``upstreams``, ``prefix`` for nginx's files."""
    if not upstreams:
        raise ServeError("nginx needs at least one replica to send students to.")
    upload_mb = upload_limit_mb() if upload_mb is None else upload_mb
    servers = "\n".join(f"        server {address} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;" for address in upstreams)
    values = {"prefix": str(prefix), "listen": listen, "servers": servers, "upload_config_mb": str(upload_mb), "upload_mb": str(upload_mb + 1)}
    text = template.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    return text


def port_is_free(port: int, address: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now. SO_REUSEADDR, as nginx and Streamlit set it:
    connections of a server that just stopped (TIME_WAIT) do not hold the port, a listener does."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def healthy(address: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/_stcore/health", timeout=timeout) as answer:
            return answer.status == 200
    except OSError:
        return False


@dataclass
class School:
    """What :func:`start_school` started: the replicas (port → process), nginx, and its folder."""

    port: int
    folder: Path
    replicas: dict[int, subprocess.Popen] = field(default_factory=dict)
    nginx: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def replica_command(port: int, extra_options: Sequence[str] = ()) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), "--server.port", str(port),
        "--server.address", "127.0.0.1", "--server.headless", "true", *extra_options,
    ]  # fmt: skip


def start_replica(port: int, env: dict[str, str], log: Path, extra_options: Sequence[str] = ()) -> subprocess.Popen:
    """One ``streamlit run`` on 127.0.0.1:``port`` (its own session: the terminal's Ctrl-C reaches us, we stop it)."""
    with open(log, "ab") as out:
        return subprocess.Popen(replica_command(port, extra_options), cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(school: School, ports: Sequence[int], timeout: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while not healthy(f"127.0.0.1:{port}"):
            process = school.replicas.get(port)
            if process is not None and process.poll() is not None:
                raise ServeError(f"The replica on port {port} exited with code {process.returncode}; see {school.folder / f'replica-{port}.log'}.")
            if time.monotonic() > deadline:
                raise ServeError(f"The replica on port {port} did not answer /_stcore/health within {timeout:.0f} s.")
            time.sleep(0.3)


def start_nginx(school: School, listen: str, upstreams: Sequence[str]) -> subprocess.Popen:
    """nginx in the foreground (``daemon off``) with the rendered config; checked with ``nginx -t`` first."""
    binary = nginx_binary()
    if binary is None:
        raise ServeError(NGINX_MISSING)
    config = school.folder / "nginx.conf"
    config.write_text(render_nginx_conf(listen, upstreams, school.folder), encoding="utf-8")
    command = [binary, "-p", str(school.folder), "-c", str(config), "-e", str(school.folder / "error.log"), "-g", "daemon off;"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if checked.returncode != 0:
        raise ServeError(f"nginx refused the generated config {config}: {checked.stderr.strip().splitlines()[-1] if checked.stderr.strip() else checked.returncode}")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(school.folder / "nginx.out", "ab"), start_new_session=True)
    port = int(listen.rsplit(":", 1)[-1])
    deadline = time.monotonic() + 10
    while port_is_free(port) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.poll() is not None:
        raise ServeError(f"nginx exited with code {process.returncode}: {(school.folder / 'error.log').read_text(errors='replace').strip()[-300:]}")
    return process


def start_school(
    replicas: int, port: int, env: dict[str, str], folder: Path, first_port: int | None = None, address: str = "0.0.0.0", extra_options: Sequence[str] = (),
) -> School:
    """Start ``replicas`` replicas on ``first_port``, ``first_port + 1``, … (default ``port + 100``), wait
    until each answers its health check, then nginx on ``address:port`` in front of them."""
    if nginx_binary() is None:
        raise ServeError(NGINX_MISSING)
    if replicas < 1:
        raise ServeError(f"A school needs at least one replica, not {replicas}.")
    first_port = port + 100 if first_port is None else first_port
    ports = list(range(first_port, first_port + replicas))
    for wanted in (port, *ports):
        if not port_is_free(wanted, "0.0.0.0" if wanted == port else "127.0.0.1"):
            raise ServeError(f"Port {wanted} is in use; choose others with --port and --first-port.")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # nginx's workers (user nobody when started as root) write their temp files here
    env = {COOKIE_SECRET_ENV: secrets.token_hex(32), **env}  # one secret for all: an upload token stays valid on another replica
    school = School(port, folder)
    try:
        for replica_port in ports:
            school.replicas[replica_port] = start_replica(replica_port, env, folder / f"replica-{replica_port}.log", extra_options)
        wait_healthy(school, ports)
        school.nginx = start_nginx(school, f"{address}:{port}", [f"127.0.0.1:{p}" for p in ports])
    except BaseException:
        stop_school(school)
        raise
    return school


def stop_school(school: School, timeout: float = 15.0) -> None:
    """nginx first (no new students), then every replica, each sent SIGTERM at once; whatever still
    runs after ``timeout`` seconds in all gets SIGKILL. One deadline for all, so stopping a school
    takes at most ``timeout`` + 5 s however many replicas it has."""
    processes = ([school.nginx] if school.nginx is not None else []) + list(school.replicas.values())
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def running_school(replicas: int, env: dict[str, str], folder: Path, port: int | None = None, first_port: int | None = None, extra_options: Sequence[str] = ()) -> Iterator[School]:
    """A school for the ``with`` block (tests and benchmarks; nginx on 127.0.0.1 only), stopped however it ends."""
    port = port or free_port()
    school = start_school(replicas, port, env, folder, first_port or free_port_run(replicas), "127.0.0.1", extra_options)
    try:
        yield school
    finally:
        stop_school(school)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port_run(count: int, tries: int = 50) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(tries):
        first = free_port()
        if all(port_is_free(first + offset) for offset in range(count)) and first + count < 65536:
            return first
    raise ServeError(f"No {count} consecutive free ports found.")


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # the same path as Ctrl-C: stop nginx, then the replicas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2, help="Streamlit server processes (about one per CPU core)")
    parser.add_argument("--port", type=int, default=8501, help="the one port students open (nginx)")
    parser.add_argument("--address", default="0.0.0.0", help="where nginx listens (0.0.0.0: every network of this machine)")
    parser.add_argument("--first-port", type=int, help="the first replica's port on 127.0.0.1 (default: --port + 100)")
    parser.add_argument("--store-url", help=f"the class store every replica shares (default: ${STORE_URL_ENV}, else a SQLite file beside the runs folder)")
    parser.add_argument("--data-dir", help="the Beans folder (default: $BEANS_DATA_DIR)")
    parser.add_argument("--upstream", help="nginx only, in front of these host:port replicas (comma-separated; containers)")
    parser.add_argument("--log-dir", type=Path, help="keep nginx's and the replicas' logs here (default: a temporary folder, removed at the end)")
    args = parser.parse_args(argv)
    env = {key: value for key, value in ((STORE_URL_ENV, args.store_url), ("BEANS_DATA_DIR", args.data_dir)) if value}
    folder = args.log_dir or Path(tempfile.mkdtemp(prefix="beanguard-serve-"))
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops everything even when started with SIGINT ignored (a background job)
    school = School(args.port, folder)
    try:
        if args.upstream:
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
            school.nginx = start_nginx(school, f"{args.address}:{args.port}", [u.strip() for u in args.upstream.split(",") if u.strip()])
        else:
            print(f"Starting {args.replicas} replicas (logs in {folder}) …", flush=True)
            school = start_school(args.replicas, args.port, env, folder, args.first_port, args.address)
        print(f"Serving on http://{socket.gethostname()}:{args.port} ({len(school.replicas) or 'external'} replicas behind nginx). Ctrl-C stops everything.", flush=True)
        while school.nginx.poll() is None:
            for port, process in list(school.replicas.items()):
                if process.poll() is not None:
                    print(f"The replica on port {port} exited with code {process.returncode}; nginx sends its students to the others.", flush=True)
                    del school.replicas[port]
            time.sleep(1.0)
        print(f"nginx exited with code {school.nginx.returncode}; stopping.", file=sys.stderr)
        return 1
    except ServeError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Stopping nginx and the replicas …", flush=True)
        return 0
    finally:
        stop_school(school)
        if args.log_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
