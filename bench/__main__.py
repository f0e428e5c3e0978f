import sys
from importlib import import_module

SUBCOMMANDS = {"load": "bench.load", "capacity": "bench.capacity", "hosts": "bench.hosts", "pages": "bench.pages"}

if sys.argv[1:2] and sys.argv[1] in SUBCOMMANDS:
    raise SystemExit(import_module(SUBCOMMANDS[sys.argv[1]]).main(sys.argv[2:]))
raise SystemExit(import_module("bench.run").main())
