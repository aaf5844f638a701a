"""Deliverability: what decides whether a team's mail reaches the inbox, checked before and while it is sent.

    domain_health.py   the DNS checks of a sender domain (SPF with RFC 7208 lookup counting, DKIM key,
                       DMARC and alignment, MX / null MX) as pure functions over DNS answers, and which
                       failures would get mail rejected
    gate.py            check_domain (cached, stored in DomainHealth) and gate_campaigns: pause the campaigns
                       sending from a failing domain, alert the admins once, resume them when it passes
    validation.py      address validation: syntax, MX / A / null MX (concurrent, cached DNS), disposable
                       domains, role accounts, typo suggestions; validate / validate_many -> Verdict
    blocklists.py      DNS blocklists (RFC 5782): the SMTP accounts' addresses and the sender domains asked
                       about on the instance's lists at once, codes in words, refusals as "could not check",
                       cached; BlocklistStatus rows, an alert when a listing starts or ends; views.py: the
                       domain page's "Blocklists" section and its "Check now"
    spamassassin.py    SpamAssassin's score of a message from a spamd (SPAMC/1.5 REPORT over TCP): score,
                       threshold, the rules that fired; "not available" in words when spamd is not there
    dmarc/             DMARC aggregate reports: parse.py (XML / gzip / zip / email, streamed, hostile-input
                       limits), store.py (once per team, org and report id), digest.py (the per-domain page and
                       the weekly email's figures), weekly.py, views.py, cli.py (`flask dmarc parse`)

Other modules of this package are listed by those who add them.
"""
