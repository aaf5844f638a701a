"""Backups of Loft's SQLite files and a safe restore (`flask db backup` / `flask db restore`)."""
