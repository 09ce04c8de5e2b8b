;; Shared by the WASI test programs in this folder (tests/test_wasi.py assembles each as
;; (module <imports of every preview-1 function> <this prelude> <program> <strings>)).
;; A program's `(str "text")` becomes `(i32.const ADDR) (i32.const LEN)` of a data
;; segment placed from 32768 on. Memory 0..1023 is this prelude's scratch:
;; 0: iovec, 64..127: result slots for programs, 128..191: number formatting.
(memory (export "memory") 2)
(data (i32.const 192) ": \n=")

(func $print (param $p i32) (param $n i32)
  (i32.store (i32.const 0) (local.get $p))
  (i32.store (i32.const 4) (local.get $n))
  (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

(func $nl (call $print (i32.const 194) (i32.const 1)))

(func $strlen (param $p i32) (result i32)
  (local $q i32)
  (local.set $q (local.get $p))
  (block $end (loop $l
    (br_if $end (i32.eqz (i32.load8_u (local.get $q))))
    (local.set $q (i32.add (local.get $q) (i32.const 1)))
    (br $l)))
  (i32.sub (local.get $q) (local.get $p)))

;; Signed decimal.
(func $num (param $v i64)
  (local $pos i32) (local $neg i32)
  (local.set $pos (i32.const 190))
  (if (i64.lt_s (local.get $v) (i64.const 0))
    (then (local.set $neg (i32.const 1))
          (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
  (loop $l
    (local.set $pos (i32.sub (local.get $pos) (i32.const 1)))
    (i32.store8 (local.get $pos)
      (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
    (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
    (br_if $l (i64.ne (local.get $v) (i64.const 0))))
  (if (local.get $neg)
    (then (local.set $pos (i32.sub (local.get $pos) (i32.const 1)))
          (i32.store8 (local.get $pos) (i32.const 45))))
  (call $print (local.get $pos) (i32.sub (i32.const 190) (local.get $pos))))

;; "label: value\n"
(func $show (param $p i32) (param $n i32) (param $v i64)
  (call $print (local.get $p) (local.get $n))
  (call $print (i32.const 192) (i32.const 2))
  (call $num (local.get $v))
  (call $nl))

;; "label: errno\n"
(func $err (param $p i32) (param $n i32) (param $e i32)
  (call $show (local.get $p) (local.get $n) (i64.extend_i32_u (local.get $e))))

;; "label\n" when the call succeeded, "label: refused\n" otherwise (for checks whose
;; exact errno legitimately differs between implementations).
(func $ok (param $p i32) (param $n i32) (param $e i32)
  (call $print (local.get $p) (local.get $n))
  (if (local.get $e) (then (call $print (i32.const 192) (i32.const 2))
                           (call $print (i32.const 196) (i32.const 7))))
  (call $nl))
(data (i32.const 196) "refused")

;; Each NUL-terminated string of a pointer array on its own line.
(func $lines (param $ptrs i32) (param $count i32)
  (local $i i32) (local $s i32)
  (block $done (loop $l
    (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
    (local.set $s (i32.load (i32.add (local.get $ptrs) (i32.shl (local.get $i) (i32.const 2)))))
    (call $print (local.get $s) (call $strlen (local.get $s)))
    (call $nl)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $l))))

;; Fill the iovec at `slot` with (ptr, len).
(func $iov (param $slot i32) (param $p i32) (param $n i32)
  (i32.store (local.get $slot) (local.get $p))
  (i32.store offset=4 (local.get $slot) (local.get $n)))

;; Print the dirents in buf[0:used) as "name: type next".
(func $dirents (param $buf i32) (param $used i32)
  (local $off i32) (local $len i32)
  (block $done (loop $l
    (br_if $done (i32.gt_u (i32.add (local.get $off) (i32.const 24)) (local.get $used)))
    (local.set $len (i32.load offset=16 (i32.add (local.get $buf) (local.get $off))))
    (br_if $done (i32.gt_u (i32.add (i32.add (local.get $off) (i32.const 24)) (local.get $len))
                           (local.get $used)))
    (call $show (i32.add (i32.add (local.get $buf) (local.get $off)) (i32.const 24)) (local.get $len)
                (i64.load8_u offset=20 (i32.add (local.get $buf) (local.get $off))))
    (local.set $off (i32.add (local.get $off) (i32.add (i32.const 24) (local.get $len))))
    (br $l))))
