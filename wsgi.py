"""Entry module: gunicorn serves wsgi:app, the worker runs `huey_consumer wsgi.huey`.

Importing the task modules here registers every task with the consumer.
"""
import gc
import logging

from app import create_app
from app import settings
from app.backup import running
from tasks import huey
from tasks import tx_huey
from tasks import ai  # noqa: F401  (importing a task module registers its tasks)
from tasks import api  # noqa: F401
from tasks import automation_triggers  # noqa: F401
from tasks import automations  # noqa: F401
from tasks import consent  # noqa: F401
from tasks import contacts  # noqa: F401
from tasks import deliverability  # noqa: F401
from tasks import dmarc  # noqa: F401
from tasks import bounces  # noqa: F401
from tasks import imports  # noqa: F401
from tasks import notices  # noqa: F401
from tasks import operations
from tasks import reports  # noqa: F401
from tasks import sending  # noqa: F401
from tasks import system_mail  # noqa: F401
from tasks import transactional  # noqa: F401
from tasks import webhooks  # noqa: F401

app = create_app()
operations.install(app)  # each consumer process's heartbeat thread (tasks/operations.py)

# What is loaded so far (the app, its models and API schemas, the libraries) lives as long as the
# process: the cyclic collector need not walk it again. Without this, every full collection walks all of
# it, and a request or task that makes many objects (the API's bulk upsert: 10,000 contacts) starts
# several (docs/benchmarks.md, "Bulk upsert through the API"). Startup's own garbage is collected first, so
# none of it is kept for good.
gc.collect()
gc.freeze()

# While this process runs, `flask db restore` refuses to replace the database (app/backup/running.py).
_database_file = running.sqlite_path(app.config["DATABASE_URL"])
if _database_file:
    running.hold(_database_file)


@huey.on_startup()
@tx_huey.on_startup()
def enter_app_context():
    # Each consumer worker thread runs its tasks inside the app (config, templates, db).
    app.app_context().push()
    # huey_consumer adds its own plain-text handler to the "huey" logger; our JSON
    # handler on the root logger already prints those records.
    logging.getLogger("huey").handlers.clear()


@huey.pre_execute()
@tx_huey.pre_execute()
def fresh_settings(task):
    # The thread's app context lives as long as the worker: each task starts from the stored
    # instance settings, so a task queued after a save sees it (app/settings.py).
    settings.forget()
