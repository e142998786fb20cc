"""`python -m tools.cli …` is `globesms …` without the console script."""

from tools.cli import main

main()
