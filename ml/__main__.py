"""``python -m ml ...``: the research command line (see :mod:`ml.research.cli`)."""

from ml.research.cli import main

if __name__ == "__main__":
    main()
