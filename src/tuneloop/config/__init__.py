"""Agent configuration as data: the config model, bundles, versions, diffs and the state document."""
