from ndar.cli import main

raise SystemExit(main())
