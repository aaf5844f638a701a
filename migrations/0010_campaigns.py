"""Sender domains, SMTP accounts, templates, campaigns, A/B variants, links, the send ledger, usage.

Numbered 0010 to leave 0003-0009 to the audience areas' index migrations.
Frozen copies of the models as they were when this migration was written.
"""
import datetime
import secrets

from peewee import BooleanField
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import Model
from peewee import TextField


def up(migrator, db):
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    def utcnow():
        return datetime.datetime.utcnow()

    def new_token():
        return secrets.token_urlsafe(32)

    class Team(Base):
        class Meta:
            table_name = "team"

    class User(Base):
        class Meta:
            table_name = "user"

    class Contact(Base):
        class Meta:
            table_name = "contact"

    class SenderDomain(Base):
        """A domain a team sends from; campaigns may only use verified ones."""
        team = ForeignKeyField(Team, on_delete="CASCADE")
        domain = CharField()
        verified_at = DateTimeField(null=True)
        verification_token = CharField(default=new_token)
        dkim_selector = CharField(default="loft")
        dkim_private_key = TextField(default="")  # encrypted PEM
        dns_status = TextField(default="{}")  # JSON: last SPF/DKIM/DMARC check
        created_at = DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("team", "domain"), True),)


    class SmtpAccount(Base):
        """An outbound SMTP server and login a team sends through, with its limits."""
        team = ForeignKeyField(Team, on_delete="CASCADE")
        name = CharField()
        preset = CharField(default="generic")  # icloud, generic
        host = CharField()
        port = IntegerField(default=587)
        tls_mode = CharField(default="starttls")  # one of TLS_MODES; "none" only for loopback hosts
        username = CharField(default="")
        password = TextField(default="")  # encrypted with app.security.encrypt
        per_second = IntegerField(default=0)  # 0 = no limit
        per_hour = IntegerField(default=0)
        per_day = IntegerField(default=0)
        max_connections = IntegerField(default=4)
        weight = IntegerField(default=1)  # share of traffic when rotating across accounts
        status = CharField(default="active")  # active, paused
        paused_reason = TextField(default="")
        paused_until = DateTimeField(null=True)
        last_test_at = DateTimeField(null=True)
        last_test_result = TextField(default="")
        created_at = DateTimeField(default=utcnow)


    class Template(Base):
        """A reusable layout/content starting point; built-in ones have team NULL."""
        team = ForeignKeyField(Team, null=True, on_delete="CASCADE")
        name = CharField()
        kind = CharField(default="html")  # html or markdown
        body = TextField(default="")
        created_at = DateTimeField(default=utcnow)
        updated_at = DateTimeField(default=utcnow)


    class Campaign(Base):
        team = ForeignKeyField(Team, on_delete="CASCADE")
        name = CharField()
        state = CharField(default="draft")  # one of CAMPAIGN_STATES; changed only by app.campaigns.states
        from_name = CharField(default="")
        from_email = CharField(default="")
        reply_to = CharField(default="")
        subject = TextField(default="")
        preheader = TextField(default="")
        body_kind = CharField(default="html")  # html or markdown
        body = TextField(default="")
        template = ForeignKeyField(Template, null=True, on_delete="SET NULL")
        audience = TextField(default='{"lists": [], "segments": [], "exclude_lists": [], "exclude_segments": []}')
        track_opens = BooleanField(default=True)
        track_clicks = BooleanField(default=True)
        ab_test = TextField(default="{}")  # JSON: {"sample_percent", "metric": "clicks"|"opens", "wait_minutes"}
        ab_decided_at = DateTimeField(null=True)
        scheduled_at = DateTimeField(null=True)  # UTC
        started_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)
        state_reason = TextField(default="")  # why it paused or failed, in words
        frozen_at = DateTimeField(null=True)  # audience and content frozen at publish
        total = IntegerField(default=0)  # recipients in the frozen audience
        sent = IntegerField(default=0)
        failed = IntegerField(default=0)
        cursor = IntegerField(default=0)  # highest Send id handed to a batch
        parent = ForeignKeyField("self", null=True, on_delete="SET NULL")  # resend to non-openers / newcomers
        created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = DateTimeField(default=utcnow)
        updated_at = DateTimeField(default=utcnow)

        class Meta:
            indexes = ((("team", "state"), False), (("state", "scheduled_at"), False))


    class Variant(Base):
        """One arm of an A/B test (subject and/or content)."""
        campaign = ForeignKeyField(Campaign, backref="variants", on_delete="CASCADE")
        label = CharField()  # "A", "B", ...
        subject = TextField(default="")
        body = TextField(default="")
        is_winner = BooleanField(default=False)


    class Link(Base):
        """A tracked link of a frozen campaign: clicks redirect to url, looked up server-side."""
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
        url = TextField()

        class Meta:
            indexes = ((("campaign", "url"), False),)


    class Send(Base):
        """The per-recipient ledger: one row per campaign and contact, written before
        the SMTP call, so a restart never mails anyone twice or skips anyone."""
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE")
        contact = ForeignKeyField(Contact, null=True, on_delete="SET NULL")
        variant = ForeignKeyField(Variant, null=True, on_delete="SET NULL")
        email = CharField()  # frozen at publish
        status = CharField(default="queued")  # one of SEND_STATUSES
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField(null=True)
        smtp_account = ForeignKeyField(SmtpAccount, null=True, on_delete="SET NULL")
        message_id = CharField(default="")
        error = TextField(default="")
        sent_at = DateTimeField(null=True)

        class Meta:
            indexes = (
                (("campaign", "contact"), True),
                (("campaign", "status", "id"), False),
                (("message_id",), False),
            )


    class Usage(Base):
        """Messages sent per team and month (YYYY-MM), for billing and dashboards."""
        team = ForeignKeyField(Team, on_delete="CASCADE")
        month = CharField()
        messages_sent = IntegerField(default=0)

        class Meta:
            indexes = ((("team", "month"), True),)

    db.create_tables([SenderDomain, SmtpAccount, Template, Campaign, Variant, Link, Send, Usage])


def down(migrator, db):
    for table in ("usage", "send", "link", "variant", "campaign", "template", "smtp_account", "sender_domain"):
        db.execute_sql('DROP TABLE IF EXISTS "%s"' % table)
