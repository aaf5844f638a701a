"""automation_run keeps fewer, smaller indexes for what a run's end changes:

- The scheduler's claim index becomes a partial one: next_at of the waiting runs only, where it was (state, next_at)
  of every run. A run that ends (done, exited) now only leaves that index, instead of moving from its 'waiting' part
  to its 'done' part, and the index holds the runs under way, not every run there ever was.
- (contact_id, state) goes: contact_id has an index of its own (the foreign key's), and a contact has a handful of
  runs, so the exits by contact (unsubscribe, bounce, an event) read those rows. A run's end no longer moves it in
  that index either.

Ending the runs of a burst (the end UPDATE with the claim's lease before it) went from 15 to 5 µs a run at 50,000
runs and from 20 to 5 at 100,000 on SQLite (docs/benchmarks.md). The claim and the due count write the partial index's
condition as it is written here (app.db.in_partial_index): a planner uses a partial index only then."""
DUE = "automation_run_due"


def up(migrator, db):
    db.execute_sql(f"CREATE INDEX {DUE} ON automation_run (next_at) WHERE state = 'waiting'")
    migrator.migrate(migrator.drop_index("automation_run", "automation_run_state_next_at"),
                     migrator.drop_index("automation_run", "automation_run_contact_id_state"))


def down(migrator, db):
    migrator.migrate(migrator.add_index("automation_run", ("state", "next_at"), False),
                     migrator.add_index("automation_run", ("contact_id", "state"), False))
    db.execute_sql(f"DROP INDEX {DUE}")
