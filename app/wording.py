"""Small helpers for the words around numbers on pages ("1 person", "2 people")."""

IRREGULAR = {"person": "people"}


def plural(count, singular, plural_form=None):
    """'1 recipient', '1,204 recipients': the count with thousands separators and the right noun.

    A Jinja filter: {{ count|plural("person") }}. Regular nouns take an "s"; pass the
    plural for others when it is not in IRREGULAR."""
    try:
        number = int(count or 0)
    except (TypeError, ValueError):
        number = 0
    word = singular if number == 1 else (plural_form or IRREGULAR.get(singular) or singular + "s")
    return f"{number:,} {word}"
