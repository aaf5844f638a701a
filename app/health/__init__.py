"""/health: whether the database and the queue can be read and written."""
