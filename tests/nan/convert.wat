;; demote/promote of payload NaNs, and NaNs stored to memory.
(module
  (memory (export "mem") 1)
  (func (export "demote") (param f64) (result f32) (f32.demote_f64 (local.get 0)))
  (func (export "promote") (param f32) (result f64) (f64.promote_f32 (local.get 0)))
  (func (export "roundtrip") (param f64) (result f64)
    (f64.promote_f32 (f32.demote_f64 (local.get 0))))
  ;; bits of a NaN result observed as an integer, and stored to memory
  (func (export "div_bits") (param f32 f32) (result i32)
    (i32.reinterpret_f32 (f32.div (local.get 0) (local.get 1))))
  (func (export "store_sqrt") (param i32 f64)
    (f64.store (local.get 0) (f64.sqrt (local.get 1))))
  (func (export "load64") (param i32) (result i64) (i64.load (local.get 0)))
  ;; abs/neg/copysign only move bits: not canonicalized
  (func (export "neg_bits") (param f32) (result i32) (i32.reinterpret_f32 (f32.neg (local.get 0))))
)
