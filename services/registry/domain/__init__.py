"""Pure registry domain: aggregates, commands, events and errors, free of I/O."""
