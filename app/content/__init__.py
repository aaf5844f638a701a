"""One email's content, from the body a team writes to the bytes that are sent.

sources.py    what to render (a campaign, an A/B variant or a template) and the built-in layouts/
sanitize.py   email-safe HTML (bleach and a CSS allowlist)
prepare.py    checks a body on save and on every render, composes it with its layout, rewrites
              tracked links and compiles the HTML, text and subject templates; preview()
sandbox.py    the locked-down Jinja that compiles and renders them, within caps
sizing.py     how much a render builds, counted before it is built (the sandbox's caps)
record.py     the read-only Record a template sees its data through
fields.py     the merge fields a template sees (contact, team, campaign)
text.py       HTML to plain text
message.py    the per-recipient RFC 5322 message, assembled from a compiled skeleton
"""
