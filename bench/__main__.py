import sys

if sys.argv[1:2] == ["load"]:
    from bench.load import main

    raise SystemExit(main(sys.argv[2:]))

from bench.run import main

raise SystemExit(main())
