"""Agent configuration as data: the config model, bundles, versions, diffs, the state document."""
