"""The read-only record a template sees a contact, campaign or team through."""


class Record:
    """Read-only fields reachable as `record.key` or `record['key']`, and nothing else.

    A dict would expose .items/.keys/.get, which would shadow custom fields with
    those names; this exposes the data only.
    """
    __slots__ = ("_data",)

    def __init__(self, data):
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name):
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("read-only")

    def __getitem__(self, key):
        return self._data[key]

    def __contains__(self, key):
        return key in self._data

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return "Record(%r)" % (self._data,)

    def __str__(self):
        return ""  # printing a whole record is never what the author meant
