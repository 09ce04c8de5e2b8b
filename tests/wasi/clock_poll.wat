;; Clocks, sleeping with poll_oneoff, fd readiness, randomness, sched_yield. Prints
;; only facts that hold on any correct implementation.
(func (export "_start")
  (local $t0 i64) (local $t1 i64) (local $i i32) (local $nz i32)
  (call $err (str "clock monotonic") (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 72)))
  (local.set $t0 (i64.load (i32.const 72)))
  (call $err (str "clock realtime") (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 80)))
  ;; after 2020-01-01
  (call $show (str "realtime plausible") (i64.extend_i32_u (i64.gt_u (i64.load (i32.const 80)) (i64.const 1577836800000000000))))
  (call $err (str "clock process") (call $clock_time_get (i32.const 2) (i64.const 1) (i32.const 80)))
  (call $err (str "clock thread") (call $clock_time_get (i32.const 3) (i64.const 1) (i32.const 80)))
  (call $err (str "clock bad") (call $clock_time_get (i32.const 9) (i64.const 1) (i32.const 80)))
  (call $err (str "res realtime") (call $clock_res_get (i32.const 0) (i32.const 80)))
  (call $show (str "res positive") (i64.extend_i32_u (i64.gt_u (i64.load (i32.const 80)) (i64.const 0))))
  (call $err (str "res monotonic") (call $clock_res_get (i32.const 1) (i32.const 80)))
  (call $err (str "res bad") (call $clock_res_get (i32.const 9) (i32.const 80)))

  ;; sleep 30 ms: one relative monotonic clock subscription at 1024, event at 2048
  (i64.store (i32.const 1024) (i64.const 0x1234))         ;; userdata
  (i32.store8 (i32.const 1032) (i32.const 0))              ;; tag: clock
  (i32.store (i32.const 1040) (i32.const 1))               ;; monotonic
  (i64.store (i32.const 1048) (i64.const 30000000))        ;; timeout
  (i64.store (i32.const 1056) (i64.const 1000))            ;; precision
  (i32.store16 (i32.const 1064) (i32.const 0))             ;; relative
  (call $err (str "poll sleep") (call $poll_oneoff (i32.const 1024) (i32.const 2048) (i32.const 1) (i32.const 64)))
  (call $show (str "nevents") (i64.load32_u (i32.const 64)))
  (call $show (str "userdata") (i64.load (i32.const 2048)))
  (call $show (str "error") (i64.load16_u offset=8 (i32.const 2048)))
  (call $show (str "type") (i64.load8_u offset=10 (i32.const 2048)))
  (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 72)))
  (call $show (str "slept 30ms") (i64.extend_i32_u (i64.ge_u (i64.sub (i64.load (i32.const 72)) (local.get $t0)) (i64.const 30000000))))

  ;; a long clock and stdout writability: only the fd event comes back
  (i64.store (i32.const 1072) (i64.const 77))
  (i32.store8 (i32.const 1080) (i32.const 2))              ;; tag: fd_write
  (i32.store (i32.const 1088) (i32.const 1))               ;; fd 1
  (i64.store (i32.const 1048) (i64.const 60000000000))     ;; the clock: 60 s
  (call $err (str "poll fd") (call $poll_oneoff (i32.const 1024) (i32.const 2048) (i32.const 2) (i32.const 64)))
  (call $show (str "nevents") (i64.load32_u (i32.const 64)))
  (call $show (str "userdata") (i64.load (i32.const 2048)))
  (call $show (str "error") (i64.load16_u offset=8 (i32.const 2048)))
  (call $show (str "type") (i64.load8_u offset=10 (i32.const 2048)))
  (call $err (str "poll none") (call $poll_oneoff (i32.const 1024) (i32.const 2048) (i32.const 0) (i32.const 64)))

  (call $err (str "random") (call $random_get (i32.const 3000) (i32.const 64)))
  (block $d (loop $l
    (br_if $d (i32.ge_u (local.get $i) (i32.const 64)))
    (local.set $nz (i32.or (local.get $nz) (i32.load8_u offset=3000 (local.get $i))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $l)))
  (call $show (str "random nonzero") (i64.extend_i32_u (i32.ne (local.get $nz) (i32.const 0))))
  (call $err (str "sched_yield") (call $sched_yield))
  (call $err (str "fdstat bad fd") (call $fd_fdstat_get (i32.const 99) (i32.const 256))))
