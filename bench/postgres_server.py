"""A real PostgreSQL server for the tests and the benchmark, started in a temporary directory on a free loopback port.

The server binaries come from the machine (`initdb` and `pg_ctl` on PATH, as on this project's image)
or, where it has none, from the `pgserver` wheel the dev extra installs. PostgreSQL refuses to run as
root; as root the server runs as `nobody` in a directory it owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def server_binaries() -> Path:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    try:
        import pgserver
    except ImportError as exc:
        raise RuntimeError("no PostgreSQL server: install postgresql or `pip install pgserver`") from exc
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the DSN of a fresh server's `postgres` database; stop and delete it afterwards."""
    bins = server_binaries()
    root = Path(tempfile.mkdtemp(prefix="vidcat-pg-"))
    demote = None
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)

        def demote() -> None:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

    env = {"PATH": f"{bins}:{os.environ.get('PATH', '')}", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    data, port = root / "data", _free_port()
    run = dict(preexec_fn=demote, env=env, capture_output=True, text=True, check=True, timeout=120)
    subprocess.run([str(bins / "initdb"), "-D", str(data), "-U", "vidcat", "--auth=trust", "-E", "UTF8"], **run)
    options = f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c full_page_writes=off"
    subprocess.run(
        [str(bins / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"], **run
    )
    try:
        yield f"postgresql://vidcat@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], **{**run, "check": False})
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server_dsn: str, name: str) -> str:
    """A new empty database on the server: tests do not see each other's rows."""
    import psycopg

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_dsn.rsplit("/", 1)[0] + f"/{name}"
