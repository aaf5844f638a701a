"""Running Loft with confidence (docs/operations.md): the consumers' heartbeat and the worker-down banner,
alert and /health detail (`heartbeat`), tasks that failed and the dead-letter list (`deadletters`, with
`scrub` keeping secrets out of both), and what the queues hold (`queues`) for the instance's queue page
(`views`). The huey side (signals, the heartbeat thread) is tasks/operations.py."""
