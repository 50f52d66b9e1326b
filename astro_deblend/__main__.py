"""``python -m astro_deblend``: the command-line interface."""

from .cli import run_main

if __name__ == "__main__":
    run_main()
