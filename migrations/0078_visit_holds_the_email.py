"""An email step's ledger row is its visit: automation_visit gains send_id and after_event_id, and automation_mail
(migration 0069) goes.

Until now an email step wrote two rows per run, the visit and an automation_mail row, each unique per (run, step):
the mail row, written with the Send row in one transaction, made the email once per run and step; the visit recorded
the outcome. The visit is unique per (run, step) too, so it can carry the guard itself: the email's Send row and the
visit's send_id are written in one transaction (app/automations/mail.py), and a visit whose send_id is set has
queued its email. A welcome burst writes one row fewer per message (docs/benchmarks.md).

Mail rows are copied onto their visits. A mail row without a visit (the old batch wrote visits in a later transaction,
so a crash could leave one) becomes an open visit holding the send: the run, claimed again, finds the email queued and
moves on, as it would have before."""
import importlib.util
import pathlib

from peewee import IntegerField


def up(migrator, db):
    migrator.migrate(migrator.add_column("automation_visit", "send_id", IntegerField(null=True)),
                     migrator.add_column("automation_visit", "after_event_id", IntegerField(default=0)))
    mail_of_visit = ("FROM automation_mail m WHERE m.run_id = automation_visit.run_id "
                     "AND m.step_id = automation_visit.step_id")
    db.execute_sql(f"UPDATE automation_visit SET send_id = (SELECT m.send_id {mail_of_visit}), "
                   f"after_event_id = (SELECT m.after_event_id {mail_of_visit}) "
                   f"WHERE EXISTS (SELECT 1 {mail_of_visit})")
    db.execute_sql("INSERT INTO automation_visit "
                   "(run_id, step_id, outcome, detail, entered_at, send_id, after_event_id) "
                   "SELECT m.run_id, m.step_id, '', '', m.created_at, m.send_id, m.after_event_id "
                   "FROM automation_mail m WHERE NOT EXISTS (SELECT 1 FROM automation_visit v "
                   "WHERE v.run_id = m.run_id AND v.step_id = m.step_id)")
    db.execute_sql('DROP TABLE "automation_mail"')


def down(migrator, db):
    # The table as migration 0069 made it (the same file, run again), then the visits' messages copied back.
    path = pathlib.Path(__file__).with_name("0069_automation_mail.py")
    spec = importlib.util.spec_from_file_location("migration_0069", path)
    made = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(made)
    made.up(migrator, db)
    db.execute_sql("INSERT INTO automation_mail (run_id, step_id, send_id, after_event_id, created_at) "
                   "SELECT run_id, step_id, send_id, after_event_id, entered_at FROM automation_visit "
                   "WHERE send_id IS NOT NULL")
    migrator.migrate(migrator.drop_column("automation_visit", "after_event_id"),
                     migrator.drop_column("automation_visit", "send_id"))
