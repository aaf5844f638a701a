"""Health checks: does the database answer, does the queue answer."""
from app.db import db


def check_database():
    try:
        db.execute_sql("SELECT 1").fetchone()
        return "ok"
    except Exception as exc:  # any failure means "not answering"; the name tells the operator why
        return f"error: {type(exc).__name__}"


def check_queue(huey):
    try:
        pending = huey.pending_count()
        return "ok", pending
    except Exception as exc:
        return f"error: {type(exc).__name__}", None


def health(version, huey):
    database = check_database()
    queue, pending = check_queue(huey)
    ok = database == "ok" and queue == "ok"
    return {"status": "ok" if ok else "degraded", "database": database, "queue": queue,
            "queued_tasks": pending, "version": version}
