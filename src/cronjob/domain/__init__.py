"""The pure domain: schedules, triggers, templates and retry policy. Standard library only, no I/O."""
