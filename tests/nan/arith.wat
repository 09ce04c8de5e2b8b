;; Scalar arithmetic on NaN payloads, 0/0 and inf-inf.
(module
  (func (export "f32_add") (param f32 f32) (result f32) (f32.add (local.get 0) (local.get 1)))
  (func (export "f32_sub") (param f32 f32) (result f32) (f32.sub (local.get 0) (local.get 1)))
  (func (export "f32_mul") (param f32 f32) (result f32) (f32.mul (local.get 0) (local.get 1)))
  (func (export "f32_div") (param f32 f32) (result f32) (f32.div (local.get 0) (local.get 1)))
  (func (export "f64_add") (param f64 f64) (result f64) (f64.add (local.get 0) (local.get 1)))
  (func (export "f64_sub") (param f64 f64) (result f64) (f64.sub (local.get 0) (local.get 1)))
  (func (export "f64_mul") (param f64 f64) (result f64) (f64.mul (local.get 0) (local.get 1)))
  (func (export "f64_div") (param f64 f64) (result f64) (f64.div (local.get 0) (local.get 1)))
  ;; constant operands: the optimizer may fold these
  (func (export "f32_zero_div_zero") (result f32) (f32.div (f32.const 0) (f32.const 0)))
  (func (export "f64_inf_minus_inf") (result f64) (f64.sub (f64.const inf) (f64.const inf)))
  (func (export "f32_payload_plus_one") (result f32) (f32.add (f32.const nan:0x200001) (f32.const 1)))
  (func (export "f64_neg_payload_mul") (param f64) (result f64)
    (f64.mul (f64.const -nan:0x4000000000001) (local.get 0)))
  ;; results flowing through locals, a loop and a block parameter
  (func (export "f64_sum_to_nan") (param f64 i32) (result f64) (local f64)
    (loop $l
      (local.set 2 (f64.add (local.get 2) (local.get 0)))
      (br_if $l (local.tee 1 (i32.and (i32.sub (local.get 1) (i32.const 1)) (i32.const 7)))))
    (local.get 2))
  ;; rounding ops propagate NaN payloads under the arithmetic rule
  (func (export "f32_ceil") (param f32) (result f32) (f32.ceil (local.get 0)))
  (func (export "f32_floor") (param f32) (result f32) (f32.floor (local.get 0)))
  (func (export "f64_trunc") (param f64) (result f64) (f64.trunc (local.get 0)))
  (func (export "f64_nearest") (param f64) (result f64) (f64.nearest (local.get 0)))
)
