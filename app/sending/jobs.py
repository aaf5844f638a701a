"""What moves through an engine run: a claimed send (Job, with its Addressee) and what became of it
(Outcome), which the run's flusher writes to the ledger. Plain slotted objects, lighter than model
instances: a run holds a few thousand of them at once."""
from app.metrics.definitions import MESSAGES
from app.models import utcnow

# Every outcome of a delivery is made here, once: the place to count messages by result. Requeued and
# skipped sends were not attempted and are not counted. Children bound once: a label lookup per message
# would cost more than the count.
_RESULTS = {"sent": MESSAGES.labels("sent", "campaign"), "temporary": MESSAGES.labels("soft_fail", "campaign"),
            "bounced": MESSAGES.labels("bounce", "campaign"), "failed": MESSAGES.labels("failed", "campaign")}


class Job:
    """One claimed Send on its way through the run; it is also the `send` given to
    MessageFactory.build() (id, campaign_id, email), lighter than a model instance."""
    __slots__ = ("id", "campaign_id", "email", "domain", "contact", "variant_id", "attempts")

    def __init__(self, send_id, campaign_id, email, attempts, variant_id, contact):
        self.id = send_id
        self.campaign_id = campaign_id
        self.email = email
        self.domain = email.rpartition("@")[2]
        self.attempts = attempts
        self.variant_id = variant_id
        self.contact = contact


class Addressee:
    """The contact fields a message needs (MessageFactory reads id, team_id, email, name, attributes)."""
    __slots__ = ("id", "team_id", "email", "name", "attributes", "status")

    def __init__(self, contact_id, team_id, email, name, attributes, status):
        self.id = contact_id
        self.team_id = team_id
        self.email = email
        self.name = name
        self.attributes = attributes
        self.status = status


class Outcome:
    """What became of one job: the flusher writes it (ledger.record) with the others of its flush."""
    __slots__ = ("kind", "job", "account_id", "message_id", "code", "error", "at")

    def __init__(self, kind, job, account_id=None, message_id="", code=0, error=""):
        self.kind = kind  # sent, temporary, bounced, failed, requeue, skipped
        self.job = job
        self.account_id = account_id
        self.message_id = message_id
        self.code = code
        self.error = error[:1000]
        self.at = utcnow()
        counter = _RESULTS.get(kind)
        if counter is not None:
            counter.inc()
