"""Command-line entry points: `flask db ...`, `flask users ...`, `flask catcher run`."""
import json
import os
import shutil
import tempfile
import time

import click
from flask import current_app
from flask.cli import AppGroup
from peewee import SqliteDatabase
from playhouse.migrations import Runner

from app.ai.cli import ai_cli
from app.api.cli import api_keys_cli
from app.auth.services import AuthError
from app.auth.services import create_first_admin
from app.backup import archive
from app.backup import copy as database_copy
from app.backup import restored
from app.backup import running
from app.bounces.cli import bounces_cli
from app.catcher import server as catcher_server
from app.config import ROOT
from app.db import db
from app.db import id_high_water
from app.db import open_database
from app.db import raise_id_counters
from app.deliverability import validation_cli
from app.deliverability.dmarc.cli import dmarc_cli
from app.imports import cli as imports_cli
from app.submission.cli import submission_cli
from tasks import huey

MIGRATIONS_DIR = str(ROOT / "migrations")

db_cli = AppGroup("db", help="Database schema migrations, backup and restore.")
users_cli = AppGroup("users", help="Accounts.")
catcher_cli = AppGroup("catcher", help="The local mail catcher.")


def migrate(database=None):
    """Apply every pending migration; returns the names applied (none on a second run)."""
    target = database or db.obj
    if isinstance(target, SqliteDatabase) and target.database != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(target.database)), exist_ok=True)
    return Runner(target, MIGRATIONS_DIR).up()


@db_cli.command("upgrade")
def upgrade():
    """Apply pending migrations (a second run does nothing)."""
    applied = migrate()
    click.echo("Applied: " + ", ".join(applied) if applied else "Database is up to date.")


@db_cli.command("status")
def status():
    for migration in Runner(db.obj, MIGRATIONS_DIR).status():
        click.echo(f"{'applied' if migration.applied else 'pending':8} {migration.name}")


@db_cli.command("backup")
@click.argument("path")
def backup_command(path):
    """Copy the database, the queue and the media library's images into PATH: a new folder, or a .tar /
    .tar.gz file.

    Safe while Loft runs (SQLite's online backup); every copy passes an integrity check and
    PATH/manifest.json records the version, migration, time and checksums.
    """
    files = {name: path_ for name, path_ in _sqlite_files().items() if name == "loft.db" or os.path.exists(path_)}
    try:
        manifest = archive.backup(files, path, current_app.config["VERSION"], current_app.config["MEDIA_DIR"])
    except archive.BackupError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"Backup of {manifest['created_at']} written to {os.path.abspath(path)}")
    for name, info in manifest["files"].items():
        click.echo(f"  {name}: {info['bytes']:,} bytes, integrity ok, sha256 {info['sha256'][:16]}…")
    images, size = archive.media_summary(manifest)
    click.echo(f"  media: {images:,} image file(s), {size:,} bytes, each with its sha256")
    if "huey.db" not in manifest["files"]:
        click.echo("  (the queue is not in it: " + ("it lives in Redis)" if current_app.config["QUEUE_URL"]
                                                     else "there was no queue file yet)"))


@db_cli.command("restore")
@click.argument("path")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Restore even though a process seems to use the database. "
                                             "Only when you are sure it is stopped: it would corrupt the data.")
def restore_command(path, yes, force):
    """Replace the database, the queue and the media library with the backup at PATH (stop web, worker and
    mail first).

    The backup is verified before anything is touched; the current files, with their -wal and -shm,
    and the current media folder are moved into a before-restore-* folder beside the database.
    Migrations run if the backup is older, every id counter goes past the ids handed out before the
    restore (they are in links of mail already sent), and every campaign that may have sent mail after
    the backup is paused with a notice.
    """
    files = _sqlite_files()
    database = files["loft.db"]
    # No connection of this process may stay open on the files it replaces: SQLite would later
    # checkpoint into the old file and unlink the -wal of the new one when it closes.
    db.close()
    getattr(huey.storage, "close", lambda: None)()
    running.release(database)  # the flask command itself loaded wsgi.py, which marked this process
    parent = os.path.dirname(os.path.abspath(database))
    os.makedirs(parent, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=".loft-restore-", dir=parent)
    try:
        try:
            manifest, paths = archive.read_backup(path, workdir)
        except archive.BackupError as exc:
            raise click.ClickException(str(exc))
        newest = _latest_migration()
        if manifest.get("migration", "") > newest:
            raise click.ClickException(f"The backup was made by a newer Loft (migration {manifest['migration']}; "
                                       f"this one knows up to {newest}). Upgrade Loft first, then restore.")
        created = archive.created_at(manifest)
        if not yes:
            click.confirm(f"Replace {database}{' and the media folder' if 'media' in manifest else ''} with the "
                          f"backup of {manifest['created_at']}?", abort=True)
        aside = os.path.join(parent, "before-restore-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime()))
        media_dir = current_app.config["MEDIA_DIR"]
        with_media = archive.media_summary(manifest) is not None
        had_media = os.path.lexists(os.path.realpath(media_dir))
        media_kept = ""
        try:
            # Everything up to the paused campaigns happens under the lock: a worker that starts
            # meanwhile waits, and never sees the restored campaigns still "sending".
            with running.exclusive(database, list(files.values()), force=force) as problems:
                for problem in problems:
                    click.echo(f"Warning: {problem} (going on because of --force)", err=True)
                # The ids the replaced database handed out may be in mail already sent: read them first.
                replaced = restored.high_water_of(database)
                try:
                    moved = archive.put_in_place(paths, files, aside)
                    if with_media:
                        media_kept = archive.put_media_in_place(archive.media_staging(workdir), media_dir, aside)
                    applied = migrate()
                    ids = restored.never_reuse_ids(replaced, created)
                    affected = restored.settle_campaigns(created)
                except Exception as exc:
                    # Never leave restored campaigns "sending" for a worker to pick up: undo it all.
                    db.close()
                    archive.put_back(files, aside)
                    if with_media:
                        archive.put_media_back(media_dir, aside, had_media)
                    raise click.ClickException(f"The restore failed ({type(exc).__name__}: {exc}); the files "
                                               "were put back as they were before it.") from exc
        except running.InUse as exc:
            raise click.ClickException(f"Refusing to restore: {exc}. Stop the web, worker and mail processes "
                                       "first (or pass --force if you are sure they are stopped).")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    click.echo(f"Restored the backup of {manifest['created_at']} ({', '.join(paths)}).")
    if with_media:
        images, size = archive.media_summary(manifest)
        click.echo(f"Restored {images:,} image file(s) ({size:,} bytes) into {os.path.abspath(media_dir)}.")
    else:
        click.echo(f"This backup holds no images (it was made before backups included them): the media folder "
                   f"{os.path.abspath(media_dir)} was left as it is. Put back a copy of it from the time of the "
                   "backup if you have one.")
    if moved or os.path.dirname(media_kept) == aside:
        click.echo(f"The files it replaced are in {aside} (delete them once you are satisfied).")
    if media_kept and os.path.dirname(media_kept) != aside:
        click.echo(f"The media folder it replaced is in {media_kept} (delete it once you are satisfied).")
    if applied:
        click.echo("Applied migrations: " + ", ".join(applied))
    click.echo(ids)
    for campaign, what in affected:
        click.echo(f"Campaign {campaign.id} “{campaign.name}”: {what}; messages sent after the backup may go "
                   "twice if it goes on. Its team has a notice; a person decides.")


@db_cli.command("skip-ids")
@click.argument("backup_time")
def skip_ids_command(backup_time):
    """After restoring a database by other means (pg_restore of a pg_dump, a copied SQLite file): make
    every table's next id skip far past any id handed out since BACKUP_TIME (UTC, e.g. 2026-12-01T03:15:00Z),
    so links in mail sent after it never point at a new row. `flask db restore` does this itself."""
    import datetime
    when = None
    for shape in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            when = datetime.datetime.strptime(backup_time, shape)
            break
        except ValueError:
            pass
    if when is None:
        raise click.ClickException(f"{backup_time!r} is not a time like 2026-12-01T03:15:00Z (UTC).")
    floors, margin, _ = restored.id_floors(id_high_water(db), None, "given", when)
    raise_id_counters(db, floors)
    click.echo(f"Every table's ids jump ahead by {margin:,} ({restored.UNKNOWN_MARGIN:,} plus "
               f"{restored.UNKNOWN_RATE:,} a second since {when:%Y-%m-%d %H:%M:%S} UTC).")


@db_cli.command("copy-to")
@click.argument("url")
@click.option("--force", is_flag=True, help="Copy even though a process seems to use the database. Rows it "
                                             "writes during the copy would be missing from the target.")
def copy_to_command(url, force):
    """Copy every table of this SQLite database into the empty PostgreSQL database at URL
    (postgresql://user:password@host:5432/name), keeping every id; stop web, worker and mail first.

    Make the target with createdb and migrate it first (LOFT_DATABASE_URL=URL flask db upgrade). The copy
    is one transaction, checked by a row count per table; afterwards point LOFT_DATABASE_URL at URL.
    docs/scaling.md walks through the whole move.
    """
    database = running.sqlite_path(current_app.config["DATABASE_URL"])
    if database is None:
        raise click.ClickException("LOFT_DATABASE_URL is not an SQLite file: copy-to moves an SQLite install to "
                                   "PostgreSQL (copy PostgreSQL itself with pg_dump and pg_restore).")
    try:
        target = open_database(url)
    except Exception as exc:  # playhouse names the problem (unknown scheme, bad URL)
        raise click.ClickException(f"Cannot use {url.split('@')[-1]!r} as the target: {exc}") from exc
    # The check for other processes needs this process's own connection and mark gone (restore does the same).
    db.close()
    running.release(database)
    try:
        with running.exclusive(database, [database], force=force) as problems:
            for problem in problems:
                click.echo(f"Warning: {problem} (going on because of --force)", err=True)
            counts = database_copy.copy_database(db.obj, target, MIGRATIONS_DIR, progress=_copy_progress())
    except running.InUse as exc:
        raise click.ClickException(f"Refusing to copy: {exc}. Stop the web, worker and mail processes first "
                                   "(or pass --force if you are sure they are stopped).")
    except database_copy.CopyError as exc:
        raise click.ClickException(str(exc))
    finally:
        target.close()
    width = max(len(count.table) for count in counts)
    click.echo(f"{'table':<{width}}  {'SQLite':>12}  {'PostgreSQL':>12}")
    for count in counts:
        click.echo(f"{count.table:<{width}}  {count.source:>12,}  {count.target:>12,}")
    total = sum(count.target for count in counts)
    click.echo(f"Copied {total:,} rows in {len(counts)} tables; every count matches and the id counters are past "
               "the highest ids. Point LOFT_DATABASE_URL at the new database and start Loft.")


def _copy_progress(every=100_000):
    """A progress callback that says how far a big table has got, every `every` rows (small ones stay quiet)."""
    reported = {}

    def report(table, copied):
        if copied // every > reported.get(table, 0):
            reported[table] = copied // every
            click.echo(f"  {table}: {copied:,} rows copied…", err=True)
    return report


def _sqlite_files():
    """Name in a backup -> live file. Only SQLite can be backed up this way."""
    database = running.sqlite_path(current_app.config["DATABASE_URL"])
    if database is None:
        raise click.ClickException("LOFT_DATABASE_URL is not an SQLite file: back up PostgreSQL with pg_dump "
                                   "and Redis with its own snapshots (docs/operations.md).")
    files = {"loft.db": database}
    if not current_app.config["QUEUE_URL"]:
        files["huey.db"] = current_app.config["HUEY_PATH"]
    return files


def _latest_migration():
    return max(name[:-3] for name in os.listdir(MIGRATIONS_DIR) if name.endswith(".py") and name[0].isdigit())


@users_cli.command("create-admin")
@click.option("--email", required=True)
@click.option("--password", required=True, help="At least 10 characters.")
@click.option("--name", default="")
@click.option("--team", "team_name", default="My team", help="Name of the first team.")
def create_admin(email, password, name, team_name):
    """Create the instance administrator on a fresh install (same as the first visit to /setup)."""
    try:
        user = create_first_admin(email, password, name, team_name)
    except AuthError as exc:
        raise click.ClickException(str(exc))
    click.echo(json.dumps({"id": user.id, "email": user.email}))


@catcher_cli.command("run")
@click.option("--host", default=None)
@click.option("--port", default=None, type=int)
def run_catcher(host, port):
    """Run the mail catcher in the foreground until interrupted."""
    host = host or current_app.config["CATCHER_HOST"]
    port = port or current_app.config["CATCHER_PORT"]
    controller = catcher_server.start(current_app._get_current_object(), host, port)
    click.echo(json.dumps({"msg": "mail catcher listening", "host": host, "port": port}))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


def init_app(app):
    app.cli.add_command(db_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(catcher_cli)
    imports_cli.register(app)  # `flask contacts import`
    validation_cli.register(app)  # `flask contacts validate`
    app.cli.add_command(bounces_cli)  # `flask bounces parse`
    app.cli.add_command(ai_cli)  # `flask ai generate`
    app.cli.add_command(api_keys_cli)  # `flask api-keys create`
    app.cli.add_command(submission_cli)  # `flask submission run`
    app.cli.add_command(dmarc_cli)  # `flask dmarc parse`
