;; sqrt of negatives and min/max with NaN operands.
(module
  (func (export "f32_sqrt") (param f32) (result f32) (f32.sqrt (local.get 0)))
  (func (export "f64_sqrt") (param f64) (result f64) (f64.sqrt (local.get 0)))
  (func (export "f32_sqrt_neg") (result f32) (f32.sqrt (f32.const -1)))
  (func (export "f32_min") (param f32 f32) (result f32) (f32.min (local.get 0) (local.get 1)))
  (func (export "f32_max") (param f32 f32) (result f32) (f32.max (local.get 0) (local.get 1)))
  (func (export "f64_min") (param f64 f64) (result f64) (f64.min (local.get 0) (local.get 1)))
  (func (export "f64_max") (param f64 f64) (result f64) (f64.max (local.get 0) (local.get 1)))
)
