"""Prometheus metrics (docs/operations.md, "Prometheus"): `definitions` holds every metric object, the
places where things happen update them (the sending engine's outcome path, tracking, the Flask hooks in
`http`, AI generations, huey's signals in `tasks`), `collector` adds what is read at scrape time (queue
depth, imports in progress) and `views` serves GET /metrics to this machine or to a bearer token.

Several processes (gunicorn workers, huey consumers) each count their own part: with
PROMETHEUS_MULTIPROC_DIR set, every process writes its values to files there and a scrape sums them
(`exposition`); without it (flask run, most tests) the values of the one process are served."""
