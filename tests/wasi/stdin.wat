;; Copies stdin to stdout through a 7-byte buffer, then reports the byte count.
(func (export "_start")
  (local $total i64) (local $n i32)
  (call $iov (i32.const 16) (i32.const 1024) (i32.const 7))
  (block $eof (loop $l
    (call $err (str "fd_read") (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 64)))
    (local.set $n (i32.load (i32.const 64)))
    (br_if $eof (i32.eqz (local.get $n)))
    (call $print (i32.const 1024) (local.get $n))
    (call $nl)
    (local.set $total (i64.add (local.get $total) (i64.extend_i32_u (local.get $n))))
    (br $l)))
  (call $show (str "total") (local.get $total))
  ;; Writing to stdin is not allowed; reading from stdout neither.
  (call $ok (str "write stdin") (call $fd_write (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 64))))
