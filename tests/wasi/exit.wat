;; Exit status: with extra arguments, proc_exit(10 + argc); otherwise _start returns.
(func (export "_start")
  (drop (call $args_sizes_get (i32.const 64) (i32.const 68)))
  (call $print (str "before exit\n"))
  (if (i32.gt_u (i32.load (i32.const 64)) (i32.const 1))
    (then (call $proc_exit (i32.add (i32.const 10) (i32.load (i32.const 64))))))
  (call $print (str "returned\n")))
