(module
 (type $two (func (result i32 i32)))
 (memory (export "mem") 1)
 ;; A local read after a counted loop, followed by a second counted loop inside a block
 ;; with two results: the bytecode interpreter returned 3 (a stale value), not 0.
 (func (export "f") (result i32) (local $a i32) (local $b i32) (local $x i32) (local $y i32)
  i32.const 4 local.set $a
  block loop
    local.get $a i32.eqz br_if 1
    local.get $a i32.const 1 i32.sub local.set $a
    br 0
  end end
  block (type $two)
    i32.const 4 local.set $b
    block loop
      local.get $b i32.eqz br_if 1
      local.get $b i32.const 1 i32.sub local.set $b
      br 0
    end end
    local.get $a
    i32.const 11
  end
  local.set $y local.set $x local.get $x)
 (func (export "__state")))
