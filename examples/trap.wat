;; Traps two calls deep: `deadeye run --invoke go examples/trap.wat 0` prints the wasm backtrace.
(module
  (func $outer (export "go") (param i32) (result i32) (call $inner (local.get 0)))
  (func $inner (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0))))
