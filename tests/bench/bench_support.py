"""What the benchmarks share: the stack they run on.

  LOFT_BENCH_STACK=postgres  start a throwaway PostgreSQL + Redis with .ci/services.sh (stopped after), or
  LOFT_BENCH_DATABASE_URL=postgresql://.../db and LOFT_BENCH_QUEUE_URL=redis://.../N to use running ones
Neither: SQLite and huey's SQLite queue.
"""
import contextlib
import os
import shutil
import subprocess
import tempfile

from app.config import ROOT

STACK = os.environ.get("LOFT_BENCH_STACK", "sqlite")
DATABASE_URL = os.environ.get("LOFT_BENCH_DATABASE_URL", "")
QUEUE_URL = os.environ.get("LOFT_BENCH_QUEUE_URL", "")


@contextlib.contextmanager
def bench_servers():
    """(PostgreSQL URL, Redis URL) to run on, or ("", "") for SQLite and huey's SQLite queue."""
    if DATABASE_URL:
        yield DATABASE_URL, QUEUE_URL
        return
    if STACK != "postgres":
        yield "", ""
        return
    # Not under pytest's folders: those are private to root, and PostgreSQL runs as its own user.
    parent = tempfile.mkdtemp(prefix="loft-bench-services-")
    os.chmod(parent, 0o755)
    env = dict(os.environ, LOFT_SERVICES_DIR=os.path.join(parent, "svc"))
    script = str(ROOT / ".ci" / "services.sh")
    started = subprocess.run([script, "start"], env=env, check=True, capture_output=True, text=True, timeout=300)
    settings = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    try:
        yield settings["LOFT_TEST_DATABASE_URL"], settings["LOFT_TEST_QUEUE_URL"]
    finally:
        subprocess.run([script, "stop"], env=env, timeout=120)
        shutil.rmtree(parent, ignore_errors=True)
