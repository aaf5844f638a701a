"""DNS blocklists: the last answer of each list about each of a team's sending domains and SMTP addresses."""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.common import utcnow
from app.models.teams import Team


class BlocklistStatus(BaseModel):
    """What one list (`zone`) said about one target at the last check, for one team.

    `status` is the last answer: listed, clean or unknown (the list could not be asked: a timeout, a refusal such
    as Spamhaus's 127.255.255.254). `listed_since` is set by the first listed answer and cleared by the first
    clean one, never by an unknown one, so an alert goes out once per listing and once when it ends."""
    team = ForeignKeyField(Team, on_delete="CASCADE", index=False)
    kind = CharField()  # "address" (an SMTP account's IP, queried reversed) or "domain" (a sender domain)
    target = CharField()  # "192.0.2.10", "2001:db8::25" or "example.com"
    zone = CharField()  # "zen.spamhaus.org"
    status = CharField()  # listed | clean | unknown
    codes = JSONField(empty=list)  # the A records of a listed answer, e.g. ["127.0.0.2"]
    meaning = TextField(default="")  # the codes in words, or why the list could not be asked
    reason = TextField(default="")  # the list's TXT record for a listing (often with a URL)
    hosts = JSONField(empty=list)  # the SMTP host names that resolve to an address
    checked_at = DateTimeField(default=utcnow)
    listed_since = DateTimeField(null=True)

    class Meta:
        indexes = ((("team", "target", "zone"), True),)
