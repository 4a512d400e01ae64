from gatehouse.cli.main import main

raise SystemExit(main())
