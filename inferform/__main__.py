"""`python -m inferform` is the same entry point as the console script."""

from inferform.cli import main

if __name__ == "__main__":
    main()
