"""Billing: usage and cost per team (plans, the meter, CSV statements) and the monthly caps' alerts.

    plans.py   the instance's plans (settings "billing_plans") and the arithmetic of an amount due
    caps.py    the 80 % / 100 % alerts of a team's monthly cap (the cap itself: app/teams/standing.py)
    meter.py   what the meter page shows: the month so far, the projection, past months, the statement
    views.py   the team's meter page and CSV statement; the instance admin's plans and caps pages

The counts themselves are app/usage.py's (the one writer of UsageCount).
"""
