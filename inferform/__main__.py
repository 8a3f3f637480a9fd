"""`python -m inferform` is the same entry point as the console script."""

from inferform.entry import run

if __name__ == "__main__":
    run()
