from deadeye.cli import main

raise SystemExit(main())
