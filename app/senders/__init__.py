"""Senders: who a team's mail goes out as, and through what.

    accounts.py     SMTP accounts (presets, encrypted passwords, limits, rotation, "Test connection")
    domains.py      sender domains (verification, DKIM keys and signing, SPF and DMARC checks)
    health.py       whether each SMTP account can be reached, as the sending engine last found it
    mailservers.py  what SMTP accounts and bounce mailboxes (app/bounces/imap.py) share: host checks
    views.py        their pages (URLs under /sending/, endpoint names sending.*)

app/sending/ (the engine, the ledger, team mail) sends through these; nothing here sends a campaign.
"""
