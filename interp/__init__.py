"""deadeye.interp: the bytecode ISA, the runtime and the portable interpreter."""
