"""``python -m kronos.forecasts list|remove ...``: the forecast stores' command line (kronos.cli.forecasts)."""

from kronos.cli.forecasts import main

if __name__ == "__main__":
    main()
