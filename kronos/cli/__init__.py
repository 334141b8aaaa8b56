"""Command-line forecasting (``kronos-predict``) and the forecasting helpers it shares with the web UI."""
