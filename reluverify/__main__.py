from reluverify.cli import main

raise SystemExit(main())
