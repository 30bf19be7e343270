"""``python -m dlt_runner`` is ``dlt-run``."""

from dlt_runner.cli import run_main

if __name__ == "__main__":
    run_main()
