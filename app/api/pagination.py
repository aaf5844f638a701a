"""Cursor pages for API lists: an opaque cursor and a `next` link, walking by id like the UI's pages
(app/contacts/query.py), never by OFFSET, so the ten-thousandth page costs what the first does."""
import base64
import binascii
from urllib.parse import urlencode

from flask import request
from pydantic import Field

from app.api.framework import ApiProblem
from app.api.framework import Schema

MAX_LIMIT = 500
DEFAULT_LIMIT = 50


class PageQuery(Schema):
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Items per page, at most {MAX_LIMIT}.")
    cursor: str | None = Field(None, max_length=100,
                               description="The `next_cursor` of the previous page; leave out for the first.")


def encode(position):
    return base64.urlsafe_b64encode(f"p1:{position}".encode()).decode().rstrip("=")


def decode(cursor):
    """The position a cursor stands for, or a 400 naming the cursor."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, position = text.partition(":")
        if tag == "p1" and position.isdigit() and int(position) > 0:
            return int(position)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiProblem(400, "This cursor is not one Loft gave out; start again without it.",
                     errors={"cursor": "not a cursor of this list"})


def next_link(position):
    """(next_cursor, next URL) for the page after `position`, or (None, None) at the end."""
    if position is None:
        return None, None
    cursor = encode(position)
    args = request.args.to_dict()
    args["cursor"] = cursor
    return cursor, f"{request.path}?{urlencode(args)}"
