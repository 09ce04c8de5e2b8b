"""deadeye.lower: instruction selection, register allocation and encoding."""
