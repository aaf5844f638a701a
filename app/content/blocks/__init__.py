"""Block emails: a body kept as a list of blocks (schema), changed by pure operations (ops), kept with
its recent versions for undo (store) and rendered to table-based email HTML (render)."""
