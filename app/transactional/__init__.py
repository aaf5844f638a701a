"""Transactional email: single messages (receipts, password resets) on their own queue (`service.py`)."""
