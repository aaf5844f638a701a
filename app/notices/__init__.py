"""In-app notices: alerts for a team, stored by app.bounces.alerts."""
