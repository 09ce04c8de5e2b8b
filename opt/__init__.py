"""deadeye.opt: IR optimization passes and the mid-end rewrite-rule driver."""
