"""Brand kit and sign-up forms."""
from peewee import CharField
from peewee import DateTimeField
from peewee import ForeignKeyField
from peewee import IntegerField
from peewee import TextField

from app.db import BaseModel
from app.db import JSONField
from app.models.common import new_token
from app.models.common import utcnow
from app.models.contacts import Contact
from app.models.contacts import MailingList
from app.models.teams import Team


class BrandKit(BaseModel):
    """A team's logo, colours, font and footer: applied to block emails and to its public pages.
    Empty values mean Loft's defaults; app/brand/services.py validates every value before it is used."""
    team = ForeignKeyField(Team, unique=True, on_delete="CASCADE")
    public_key = CharField(unique=True, default=new_token)  # names the public stylesheet, not the team
    logo_url = TextField(default="")  # "/m/<key>.<ext>" from the media library, or an https:// URL
    primary_color = CharField(default="")  # "#rrggbb"
    background_color = CharField(default="")
    text_color = CharField(default="")
    font = CharField(default="")  # a key of app.brand.services.FONTS
    footer_text = TextField(default="")
    updated_at = DateTimeField(default=utcnow)


class SignupForm(BaseModel):
    """A sign-up form built by the team: the lists it subscribes to, the fields it asks, its wording."""
    team = ForeignKeyField(Team, on_delete="CASCADE")
    name = CharField()
    public_id = CharField(unique=True, default=new_token)  # the hosted page /f/<public_id>; unguessable
    list_ids = JSONField(empty=list)
    fields = JSONField(empty=list)  # [{"key": "name" or a CustomField key, "label": ..., "required": bool}]
    title = CharField(default="")
    intro = TextField(default="")
    consent_text = TextField(default="")
    button_label = CharField(default="")
    success_message = TextField(default="")
    colors = JSONField()  # {"primary": "#rrggbb", ...}; a missing colour is the brand kit's
    popup_delay = IntegerField(default=0)  # seconds before the popup opens by itself; 0 = on a click only
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "id"), False),)


class FormSignup(BaseModel):
    """One subscription a sign-up form brought: what the form's sign-up count counts."""
    form = ForeignKeyField(SignupForm, on_delete="CASCADE")
    contact = ForeignKeyField(Contact, on_delete="CASCADE")
    list = ForeignKeyField(MailingList, on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("form", "contact", "list"), True),)
