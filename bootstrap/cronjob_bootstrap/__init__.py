"""Composition root: configuration, the dependency-injector container, and the ``cronjob`` CLI."""
