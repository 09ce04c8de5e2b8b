"""deadeye.lower.dsl: the rule language (grammar, checks, matcher compiler)."""
