"""Automations: welcome series and drip sequences (docs/automations.md).

runs.py      who enters (re-entry rules) and who leaves (unsubscribe, bounce, complaint, deletion, goal): the one
             writer of AutomationRun rows' state."""
