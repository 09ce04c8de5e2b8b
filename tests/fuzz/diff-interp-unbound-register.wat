;; Hand-reduced from diff-3000583.wasm: on engine "interp" at opt_level 0 the call
;; raised UnboundLocalError (a register read before any write in the generated handler
;; code) instead of returning 0 and storing a vector.
(module (memory (export "mem") 1)
 (func (export "f") (param i32) (result i32)
  i32.const 0
  v128.const i64x2 1 2
  v128.const i64x2 3 4
  local.get 0
  select (result v128)
  v128.const i64x2 5 6
  i32x4.bitmask
  if (result v128)
    v128.const i64x2 -1 7
    local.get 0
    br_if 0
    drop
    v128.const i64x2 0 0
    f32x4.convert_i32x4_s
  else
    i32.const 12
    local.set 0
    v128.const i64x2 0 0
    v128.const i64x2 0 0
    i32x4.extmul_low_i16x8_s
  end
  f64.const 0
  f64.const 0
  f64.le
  select (result v128)
  v128.store
  i32.const 0)
 (func (export "__state")))
