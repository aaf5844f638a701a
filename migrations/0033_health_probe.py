"""/health's write probe: one row that /health rewrites, so "ok" means the database takes writes.

A read (SELECT 1) still answers on a read-only file, a read-only mount or a full disk; a committed
write does not, and that is what the web and worker processes need.
"""
from peewee import DateTimeField
from peewee import Model


def up(migrator, db):
    class HealthProbe(Model):
        checked_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "health_probe"

    db.create_tables([HealthProbe])
    HealthProbe.insert(id=1).execute()


def down(migrator, db):
    db.execute_sql('DROP TABLE IF EXISTS "health_probe"')
