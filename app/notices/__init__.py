"""In-app notices for a team: alerts.py stores, lists, dismisses and emails them (the email leaves
from tasks/notices.py); views.py is the notices page and the bell in the layout."""
