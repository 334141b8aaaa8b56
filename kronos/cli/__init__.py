"""Command-line forecasting (``kronos-predict``) over kronos.inference.frame."""
