"""Helpers every model module shares."""
import datetime
import secrets


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def new_token():
    return secrets.token_urlsafe(32)
