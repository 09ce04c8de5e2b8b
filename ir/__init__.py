"""deadeye.ir: the SSA IR, its analyses and the exact Wasm numerics. Imports nothing of ours."""
