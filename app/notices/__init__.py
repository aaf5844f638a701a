"""In-app notices (issue 5): alerts for a team, stored by app.feedback.alerts."""
