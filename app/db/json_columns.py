"""JSONField: a column holding one JSON document (TEXT on SQLite, JSONB on PostgreSQL)."""
import peewee


# --- JSON columns -------------------------------------------------------------------------------
# A column holding one JSON document is a JSONField: code assigns and reads Python objects and
# queries inside a document with field["key"] / field.path("a", "b") (peewee writes SQLite's ->
# and ->> or PostgreSQL's #> and #>> from the same expression). TEXT on SQLite, JSONB on PostgreSQL.

class JSONField(peewee.JSONField):
    """A JSON document column. `empty` (dict, list, or None for any JSON value) is what a new row
    holds and what a stored "" or NULL reads as: the columns were TEXT written by json.dumps before
    they were typed, so old rows read back unchanged and no migration was needed.

    On SQLite the value is bound as the json.dumps text (the same bytes as before, and a plain
    parameter, so executemany can send it); peewee's default would wrap it in json(), a SQL call.
    JSON text where a document belongs ("{...}" assigned by hand) raises TypeError instead of being
    stored as one JSON string."""

    def __init__(self, empty=dict, **kwargs):
        self.empty = empty
        kwargs.setdefault("default", empty)
        self._bind_text = True
        super().__init__(**kwargs)

    def _db_hook(self, database):
        super()._db_hook(database)
        self._bind_text = database is None or isinstance(self._helper, peewee.SqliteJSONMethods)

    def db_value(self, value):
        if (value is None and self.null) or isinstance(value, peewee.Node):
            return value  # None is SQL NULL where the column allows it, else JSON null
        if self.empty in (dict, list) and isinstance(value, str) and value[:1] in ("{", "["):
            raise TypeError(f"{self.model.__name__}.{self.name} takes a {self.empty.__name__}, not JSON text")
        if self._bind_text:
            return self._dumps(value)
        return self._wrap(value)  # psycopg's Jsonb; peewee's own db_value would send None as SQL NULL

    def python_value(self, value):
        # On SQLite "" is an empty TEXT column; psycopg hands JSONB over parsed, where "" is a JSON string.
        if value is None or (value == "" and self._bind_text):
            return self.empty() if callable(self.empty) else self.empty
        return super().python_value(value)
