"""Fuzzing: a generator of valid modules (`gen`), a differential runner against wasmtime
(`differential`) and mutation fuzzing with hostile inputs (`hostile`). `deadeye fuzz`
runs long campaigns of either kind."""
