"""deadeye.jit: native handlers for the bytecode ISA, generated with llvmlite."""
