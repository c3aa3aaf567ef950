"""The production stores for real: a PostgreSQL server holds the Dagster instance (dagster-postgres,
configured by docs/dagster-production.yaml) and MLflow's tracking and registry store while
``semid demo`` materialises two tiny months; the SIDs equal the sqlite default's (the texts' tokens are
the sqlite lineage's, copied in).

The server is Debian's ``postgresql`` package (``make test`` installs it when missing), run
from a temporary data directory on 127.0.0.1 and a free port, and stopped by its PID at the
end even when the test fails. PostgreSQL refuses to run as root, so under root (CI) the
server runs as the package's ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from semid_assets.home import PROJECT_ROOT
from semid_assets.settings import METHODS

pytestmark = [pytest.mark.timeout(1200), pytest.mark.heavy]

USER, PASSWORD = "semid", "semid-test-only"


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    def url(self, database: str, driver: str = "+psycopg2") -> str:
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; semid installs psycopg2.
        return f"postgresql{driver}://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make test` installs "
                    "it; by hand: apt-get update && apt-get install -y postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(base: Path) -> list[str]:
    """The command prefix that runs the server's programs: as ``postgres`` under root, else as we are."""
    if os.geteuid() != 0:
        return []
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root, PostgreSQL needs the 'postgres' account that Debian's postgresql "
                    "package creates; install the package (apt-get install -y postgresql)")
    os.chown(base, account.pw_uid, account.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has stopped
    except FileNotFoundError:
        return True


def _stop(pid: int) -> None:
    """Fast shutdown (SIGINT), then SIGKILL if the server is still there after 30 s."""
    for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _gone(pid):
                return
            time.sleep(0.2)


@contextmanager
def postgres_server(databases: tuple[str, ...]) -> Iterator[Server]:
    bin_dir = _bin_dir()
    base = Path(tempfile.mkdtemp(prefix="semid-pg-"))
    pid = None
    try:
        as_user = _as_server_user(base)
        (base / "pw").write_text(PASSWORD + "\n")
        os.chmod(base / "pw", 0o644)
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(base / "data"), "-U", USER,
                        f"--pwfile={base / 'pw'}", "--auth-local=trust", "--auth-host=scram-sha-256",
                        "-E", "UTF8", "--locale=C"], check=True, capture_output=True, timeout=300)
        port = _free_port()
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base}"
        started = subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(base / "data"), "-l",
                                  str(base / "log"), "-o", options, "-w", "-t", "120", "start"],
                                 capture_output=True, text=True, timeout=180)
        if (base / "data" / "postmaster.pid").exists():
            pid = int((base / "data" / "postmaster.pid").read_text().split()[0])
        if started.returncode != 0:
            log = (base / "log").read_text() if (base / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{log}")
        for name in databases:
            subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, name],
                           check=True, capture_output=True, timeout=60, env={**os.environ, "PGPASSWORD": PASSWORD})
        yield Server(port, pid)
    finally:
        if pid is not None:
            _stop(pid)
        shutil.rmtree(base, ignore_errors=True)


def _sids(root: Path, months: list[str]) -> dict[tuple[str, str], pd.DataFrame]:
    return {(m, method): pd.read_parquet(root / f"month={m}" / f"method={method}.parquet")
            for m in months for method in METHODS}


def test_a_lineage_on_postgres_gives_the_sqlite_defaults_sids(tiny_run, tiny_settings, tiny_default_sids, tmp_path):
    import psycopg2

    _, _, _, months = tiny_run
    home = tmp_path / "home"
    # The texts' tokens from the sqlite lineage's cache (content-addressed): what is compared is the
    # stores, so the texts are not encoded a second time.
    shutil.copytree(tiny_settings.cache_dir, home / "cache")
    with postgres_server(("dagster", "mlflow")) as server:
        env = {**os.environ, "SEMID_HOME": str(home), "SEMID_DATASET": "synthetic", "SEMID_SIZE": "tiny",
               "SEMID_DAGSTER_CONFIG": str(PROJECT_ROOT / "docs" / "dagster-production.yaml"),
               "SEMID_MLFLOW_TRACKING_URI": server.url("mlflow"),
               "DAGSTER_PG_USERNAME": USER, "DAGSTER_PG_PASSWORD": PASSWORD, "DAGSTER_PG_HOST": "127.0.0.1",
               "DAGSTER_PG_PORT": str(server.port), "DAGSTER_PG_DB": "dagster",
               "SEMID_IMAGE": "semid:never-launched"}
        env.pop("DAGSTER_HOME", None)
        done = subprocess.run([sys.executable, "-m", "semid_assets.cli", "demo", "--months", str(len(months))],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1100)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        with psycopg2.connect(server.url("dagster", driver="")) as dagster_db, dagster_db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM runs")
            runs = cursor.fetchone()[0]
        with psycopg2.connect(server.url("mlflow", driver="")) as mlflow_db, mlflow_db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM model_versions")
            versions = cursor.fetchone()[0]
    # Every month ran its monthly job, one tokenizer job per method and the comparison.
    assert runs == len(months) * (len(METHODS) + 2)
    # An aligner and a tokenizer version per method, per month.
    assert versions == len(months) * (len(METHODS) + 1)
    # Nothing went to the sqlite defaults.
    assert not (home / "mlflow" / "mlflow.db").exists() and not list((home / "dagster").glob("**/*.db"))
    ours = _sids(home / "assets" / "synthetic-tiny" / "semantic_ids", months)
    default = _sids(tiny_default_sids, months)
    for key, table in default.items():
        pd.testing.assert_frame_equal(ours[key], table, check_exact=True, obj=str(key))
