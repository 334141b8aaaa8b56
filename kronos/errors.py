"""The one base class of errors a user can fix (bad config, bad data, missing weights, bad request).

Every front end (``python -m kronos.train``, ``kronos-predict``, the data pipelines, the web UI) catches
:class:`KronosUserError` once and turns it into one line and exit status 2 (HTTP 400 on the web). Anything
else that escapes is a bug and keeps its traceback. The message must name what is wrong (the key, file,
column or row) and what to do.
"""

from __future__ import annotations


class KronosUserError(Exception):
    """A mistake in what the user asked for or gave, stated in one line with what to do about it."""


class ConfigError(KronosUserError, ValueError):
    """A config value no stage can run with: ``<key>=<value>``, what is wrong, and what to write instead.

    The one config error: every settings type (backtest, evaluate, fine-tuning, the up-front checks of
    :mod:`kronos.config_checks`) raises it, through :func:`kronos.settings_io.settings_from_config`.
    """
