"""SMTP submission: apps that speak only SMTP hand their mail to the transactional stream (`server.py`,
run by `flask submission run`, the Procfile's `submission`)."""
