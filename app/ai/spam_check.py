"""A simple spam-wording check of what an AI (or a writer) put in a subject line or preheader.

flags(text) lists what a spam filter or a reader would frown at, in words for the writer. It does not
block anything: the builder shows the flags beside a suggestion. (Filled in below.)
"""


def flags(text):
    """Words for the writer about spam-like wording in `text`; [] when it reads clean."""
    return []
