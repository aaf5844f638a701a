"""automation_visit's index on step_id becomes one on (step_id, outcome): the builder's and the report's per-step
counts (app/automations/report.step_counts, a GROUP BY step and outcome) then read the index alone instead of
every visit's row. Inserting a visit costs the same (one index for one), and every lookup by step still has it as
the leading column."""


def up(migrator, db):
    migrator.migrate(migrator.add_index("automation_visit", ("step_id", "outcome"), False),
                     migrator.drop_index("automation_visit", "automation_visit_step_id"))


def down(migrator, db):
    migrator.migrate(migrator.add_index("automation_visit", ("step_id",), False),
                     migrator.drop_index("automation_visit", "automation_visit_step_id_outcome"))
