"""Ports: the abstract interfaces the core needs. Each ABC's docstrings are its contract; the
adapters in ``cronjob_adapters`` implement them and the contract tests hold them to it."""
