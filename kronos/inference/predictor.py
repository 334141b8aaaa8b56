"""KronosPredictor: DataFrames of K-lines in, forecast DataFrames (or sample paths) out.

Shapes: B series, L history rows (longest, others left-padded), H = pred_len, S = sample_count,
6 features (kronos.data.features.FEATURES), 5 stamp fields.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ContextManager, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from kronos.data.features import time_features
from kronos.data.transforms import LEVEL, check_normalization, encode
from kronos.inference.candles import CandleRepairs, candle_paths
from kronos.inference.generation import decode_forecast, generate_tokens, window_inputs
from kronos.inference.samples import ForecastSamples
from kronos.inference.settings import SamplingSettings, with_calibration
from kronos.inference.validation import ForecastInputError, history_matrix, timestamp_index
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer
from kronos.training_info import Calibration


def usable_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, refused with one ``ForecastInputError`` when torch cannot use it here
    (e.g. ``tpu``, or ``cuda`` on a machine or torch build without a GPU)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ForecastInputError(f"device {device!r} is not a torch device: use cpu, cuda, cuda:1 or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ForecastInputError(f"device {device} asked for, but torch sees no CUDA GPU: use cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ForecastInputError(f"device {device} asked for, but MPS is not available here: use cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ForecastInputError(f"device {device!r} is not supported: use cpu, cuda, cuda:1 or mps")
    return dev


def default_device() -> torch.device:
    """``$KRONOS_DEVICE`` when set, else the best available accelerator: cuda, then mps, then cpu."""
    if os.environ.get("KRONOS_DEVICE"):
        return usable_device(os.environ["KRONOS_DEVICE"])
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


REFERENCE_SAMPLING = SamplingSettings(T=1.0, top_k=0, top_p=0.9, sample_count=1)  # the reference's keyword defaults


def sampling_of(sampling: SamplingSettings | None, T: float | None, top_k: int, top_p: float | None,
                sample_count: int, calibration: Calibration | None = None) -> SamplingSettings:
    """``sampling`` when given (the keywords must then keep their defaults), else the keywords as one
    SamplingSettings (unseeded: the ``generator`` argument or torch's global generator draws).

    ``T`` / ``top_p`` None: the ``calibration`` recorded with the predictor (chosen on validation) when there
    is one, else the reference's 1.0 / 0.9. An explicit value always wins. The calibrated ``spread`` (chosen
    with T, see :mod:`kronos.calibration`) comes with a calibrated T; with an explicit T the paths are as decoded.
    """
    loose = SamplingSettings(T=REFERENCE_SAMPLING.T if T is None else T, top_k=top_k,
                             top_p=REFERENCE_SAMPLING.top_p if top_p is None else top_p, sample_count=sample_count)
    if sampling is None:
        unset = [k for k, v in (("T", T), ("top_p", top_p), ("spread", T)) if v is None]
        return with_calibration(loose, unset, calibration)[0] if unset else loose
    if not isinstance(sampling, SamplingSettings):
        raise TypeError(f"sampling must be a SamplingSettings, got {type(sampling).__name__}")
    if loose != REFERENCE_SAMPLING:
        raise ForecastInputError("pass the sampling either whole (sampling=SamplingSettings(...)) or as T, top_k, "
                                 "top_p, sample_count keywords, not both")
    return sampling


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(device: torch.device, precision: str) -> ContextManager[Any]:
    """The autocast block of a forecast: none for ``fp32``; ``bf16``/``fp16`` autocast on CUDA. On a CPU
    ``bf16`` runs emulated (slower; there to measure its effect on the signals against fp32) and
    ``fp16`` is refused (CPU autocast has no float16 kernels for this model).

    Raises:
        ForecastInputError: an unknown precision, or fp16 on a non-CUDA device.
    """
    if precision not in PRECISIONS:
        raise ForecastInputError(f"precision={precision!r}: use one of {list(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ForecastInputError(f"precision=fp16 needs a CUDA device (this forecast runs on {device.type}): use "
                                 "fp32, or bf16 to measure reduced precision on a CPU")
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


class KronosPredictor:
    """Forecast K-lines with a Kronos predictor and its tokenizer (reference semantics, exact fast decoding).

    The (model, tokenizer) argument order is the reference's public API and stays so; every internal function
    of this framework takes (tokenizer, predictor).

    Args:
        model: the predictor; tokenizer: the tokenizer it was trained with (same bit widths).
        device: where to run (default: cuda, mps, else cpu). Both models are put in eval mode there.
        max_context: longest window the predictor sees; longer histories slide.
        clip: normalised inputs are clipped to +-clip.
        use_cache: cached decoding (fast) instead of recomputing every window; both give the same tokens.
        normalization: the inputs the pair was trained on, ``level`` or ``returns``
            (:mod:`kronos.data.transforms`); None: what the predictor's export recorded
            (``training_info.json``, read by ``Kronos.from_pretrained``), else ``level`` (published checkpoints).
        rolling_cache: APPROXIMATE, off by default. Once history + forecast exceed ``max_context``, keep
            decoding from a ring-buffer cache instead of recomputing the slid window (several times faster
            for long forecasts past the context, but results no longer equal the reference's).

    Attributes:
        calibration: the sampling chosen on validation for this predictor (``training_info.json``; set by
            :func:`kronos.inference.loading.load_predictor`, None otherwise): the default T / top_p of the
            keyword API.
        precision: ``fp32`` (default), or ``bf16``/``fp16`` autocast for CUDA inference (see
            :func:`autocast_context`; on a CPU bf16 is emulated and fp16 refused).

    ``draws_per_window``: decision forecasts (kronos.inference.decisions) may pass a
    :class:`~kronos.inference.token_sampling.WindowDraws` as ``generator`` (per-window seeding).
    """

    draws_per_window = True

    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        device: str | torch.device | None = None,
        max_context: int = 512,
        clip: float = 5.0,
        use_cache: bool = True,
        rolling_cache: bool = False,
        precision: str = "fp32",
        normalization: str | None = None,
    ) -> None:
        if (tokenizer.s1_bits, tokenizer.s2_bits) != (model.s1_bits, model.s2_bits):
            raise ValueError(
                f"tokenizer bits (s1_bits={tokenizer.s1_bits}, s2_bits={tokenizer.s2_bits}) differ from the "
                f"predictor's (s1_bits={model.s1_bits}, s2_bits={model.s2_bits}); load the tokenizer the "
                f"predictor was trained with"
            )
        if max_context < 1:
            raise ValueError(f"max_context must be >= 1, got {max_context}")
        self.device = usable_device(device) if device is not None else default_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer.to(self.device).eval()
        self.max_context = max_context
        self.clip = clip
        self.normalization = check_normalization(normalization or getattr(model, "input_normalization", None) or LEVEL)
        self.use_cache = use_cache
        self.rolling_cache = rolling_cache
        self.calibration: Calibration | None = None
        autocast_context(self.device, precision)  # refuses an unknown precision or fp16 on a CPU, now
        self.precision = precision
        if rolling_cache and not use_cache:
            raise ValueError("rolling_cache=True needs use_cache=True")

    def predict(
        self,
        df: pd.DataFrame,
        x_timestamp: Any,
        y_timestamp: Any,
        pred_len: int,
        T: float | None = None,
        top_k: int = 0,
        top_p: float | None = None,
        sample_count: int = 1,
        verbose: bool = True,
        generator: torch.Generator | None = None,
        *,
        sampling: SamplingSettings | None = None,
    ) -> pd.DataFrame:
        """Mean forecast [pred_len, 6] of one series, indexed by ``y_timestamp``.

        The mean of possible candles is a possible candle; ``result.attrs["candle_repairs"]`` holds the
        counts of :class:`kronos.inference.candles.CandleRepairs` over the sample paths it averages.

        df: history rows with open, high, low, close (volume, amount optional); x_timestamp: its
        len(df) datetimes; y_timestamp: the pred_len future datetimes. Sampling is given either whole
        (``sampling=SamplingSettings(...)``) or by the reference's keywords ``T``, ``top_k``, ``top_p``,
        ``sample_count`` (``T`` / ``top_p`` unset: the predictor's calibration when loaded with one, else the
        reference's 1.0 / 0.9); ``generator`` (default: one made from ``sampling.seed``) draws the tokens.
        """
        return self.predict_samples(
            df, x_timestamp, y_timestamp, pred_len, T, top_k, top_p, sample_count, verbose, generator,
            sampling=sampling,
        ).mean()  # its attrs["candle_repairs"]: what the repair of the sample paths changed

    def predict_samples(
        self,
        df: pd.DataFrame,
        x_timestamp: Any,
        y_timestamp: Any,
        pred_len: int,
        T: float | None = None,
        top_k: int = 0,
        top_p: float | None = None,
        sample_count: int = 1,
        verbose: bool = True,
        generator: torch.Generator | None = None,
        *,
        sampling: SamplingSettings | None = None,
    ) -> ForecastSamples:
        """Like :meth:`predict`, but every sample path: ``paths`` [sample_count, pred_len, 6]."""
        settings = sampling_of(sampling, T, top_k, top_p, sample_count, self.calibration)
        return self._forecast([df], [x_timestamp], [y_timestamp], pred_len, settings, verbose, generator, batch=False)[0]

    def predict_batch(
        self,
        df_list: Sequence[pd.DataFrame],
        x_timestamp_list: Sequence[Any],
        y_timestamp_list: Sequence[Any],
        pred_len: int,
        T: float | None = None,
        top_k: int = 0,
        top_p: float | None = None,
        sample_count: int = 1,
        verbose: bool = True,
        generator: torch.Generator | None = None,
        *,
        sampling: SamplingSettings | None = None,
    ) -> list[pd.DataFrame]:
        """Mean forecasts of several series in one batch; histories may differ in length.

        Greedy results equal predicting each series alone.
        """
        return [
            s.mean()
            for s in self.predict_batch_samples(
                df_list, x_timestamp_list, y_timestamp_list, pred_len, T, top_k, top_p, sample_count, verbose,
                generator, sampling=sampling,
            )
        ]

    def predict_batch_samples(
        self,
        df_list: Sequence[pd.DataFrame],
        x_timestamp_list: Sequence[Any],
        y_timestamp_list: Sequence[Any],
        pred_len: int,
        T: float | None = None,
        top_k: int = 0,
        top_p: float | None = None,
        sample_count: int = 1,
        verbose: bool = True,
        generator: torch.Generator | None = None,
        *,
        sampling: SamplingSettings | None = None,
    ) -> list[ForecastSamples]:
        """Like :meth:`predict_batch`, returning every sample path per series."""
        settings = sampling_of(sampling, T, top_k, top_p, sample_count, self.calibration)
        return self._forecast(df_list, x_timestamp_list, y_timestamp_list, pred_len, settings, verbose, generator,
                              batch=True)

    def generate(self, df: pd.DataFrame, x_timestamp: Any, y_timestamp: Any = None, pred_len: int | None = None,
                 sampling: SamplingSettings | None = None) -> list[pd.DataFrame]:
        """Generated OHLCV continuations of ``df`` (one frame per ``sampling.sample_count``); see
        :func:`kronos.inference.generate.generate` (default sampling: the paper's T 1.0, top-p 0.95)."""
        from kronos.inference.generate import GENERATION_SAMPLING, generate

        return generate(self, df, x_timestamp, y_timestamp, pred_len, sampling or GENERATION_SAMPLING)

    def forecast_normalized(
        self,
        x: Tensor | np.ndarray,
        x_stamp: Tensor | np.ndarray,
        y_stamp: Tensor | np.ndarray,
        sampling: SamplingSettings,
        lengths: Tensor | None = None,
        generator: torch.Generator | None = None,
        verbose: bool = False,
    ) -> Tensor:
        """Normalised sample paths for a batch of normalised histories.

        Args:
            x: [B, L, 6] normalised history in ``self.normalization`` (clipped here to +-clip), left-padded when ``lengths`` is given.
            x_stamp: [B, L, 5] and y_stamp: [B, H, 5] integer calendar fields.
            sampling: how paths are drawn (validated here); S = ``sampling.sample_count``.
            lengths: int64 [B] real history rows per series (default: all L).
            generator: draws the tokens (default: ``sampling.generator(device)``, from its seed); pass one
                generator to several calls to continue one stream, or a ``WindowDraws`` (B*S rows) for
                per-window counter-based draws.
        Returns:
            float32 [B, S, H, 6] on the CPU.
        """
        if not isinstance(sampling, SamplingSettings):
            raise TypeError(f"sampling must be a SamplingSettings, got {type(sampling).__name__}")
        sampling.validate()
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        x_stamp = torch.as_tensor(x_stamp, device=self.device).long()
        y_stamp = torch.as_tensor(y_stamp, device=self.device).long()
        if x.ndim != 3 or x_stamp.shape[:2] != x.shape[:2] or y_stamp.ndim != 3 or y_stamp.shape[0] != x.shape[0]:
            raise ForecastInputError(
                f"expected x [B, L, 6], x_stamp [B, L, 5], y_stamp [B, H, 5]; got {tuple(x.shape)}, "
                f"{tuple(x_stamp.shape)}, {tuple(y_stamp.shape)}"
            )
        if y_stamp.shape[1] < 1:
            raise ForecastInputError(f"pred_len ({y_stamp.shape[1]}) must be >= 1")
        B, L, _ = x.shape
        S, pred_len = sampling.sample_count, y_stamp.shape[1]
        if pred_len > self.max_context:
            # the decoded tokens are the last max_context of the window: more rows than that cannot come back
            raise ForecastInputError(
                f"pred_len ({pred_len}) is longer than max_context ({self.max_context}): the predictor decodes "
                f"at most max_context rows, so lower pred_len or raise max_context"
            )
        if lengths is None:
            starts = torch.zeros(B, dtype=torch.long, device=self.device)
        else:
            lengths = torch.as_tensor(lengths, dtype=torch.long, device=self.device)
            if lengths.shape != (B,) or bool(((lengths < 1) | (lengths > L)).any()):
                raise ForecastInputError(f"lengths must be [B={B}] values in 1..{L}, got {lengths.tolist()}")
            starts = L - lengths
        if generator is None:
            generator = sampling.generator(self.device)
        # Padding columns are masked out, but must hold finite values and valid stamp indices.
        pad = (torch.arange(L, device=self.device)[None, :] < starts[:, None])[..., None]
        x = x.clamp(-self.clip, self.clip).masked_fill(pad, 0.0)
        x_stamp = x_stamp.masked_fill(pad, 0)
        with torch.inference_mode(), autocast_context(self.device, self.precision):
            positions, mask, _ = window_inputs(starts, 0, L)
            s1_hist, s2_hist = self.tokenizer.encode_ids(x, positions, mask)
            s1, s2 = generate_tokens(
                self.model, s1_hist, s2_hist, torch.cat([x_stamp, y_stamp], dim=1), starts, pred_len,
                self.max_context, sampling, generator, self.use_cache, verbose, self.rolling_cache,
            )
            z = decode_forecast(self.tokenizer, s1, s2, starts.repeat_interleave(S), pred_len, self.max_context)
        return z.reshape(B, S, pred_len, -1).float().cpu()

    def _forecast(
        self,
        df_list: Sequence[pd.DataFrame],
        x_timestamp_list: Sequence[Any],
        y_timestamp_list: Sequence[Any],
        pred_len: int,
        sampling: SamplingSettings,
        verbose: bool,
        generator: torch.Generator | None,
        batch: bool,
    ) -> list[ForecastSamples]:
        if not isinstance(pred_len, (int, np.integer)) or pred_len < 1:
            raise ForecastInputError(f"pred_len must be a positive integer, got {pred_len!r}")
        sampling.validate()
        if batch and isinstance(df_list, pd.DataFrame):
            raise ForecastInputError(
                "df_list must be a list of DataFrames, got one DataFrame; pass [df], [x_timestamp], [y_timestamp] "
                "or call predict()"
            )
        if not len(df_list) == len(x_timestamp_list) == len(y_timestamp_list) or len(df_list) == 0:
            raise ForecastInputError(
                f"df_list, x_timestamp_list and y_timestamp_list must be non-empty and equally long, got "
                f"{len(df_list)}, {len(x_timestamp_list)}, {len(y_timestamp_list)}"
            )
        histories, x_stamps, y_indexes = [], [], []
        for i, (df, x_ts, y_ts) in enumerate(zip(df_list, x_timestamp_list, y_timestamp_list)):
            suffix = f"_list[{i}]" if batch else ""
            histories.append(history_matrix(df, "df" + suffix))
            x_index = timestamp_index(x_ts, len(histories[-1]), "x_timestamp" + suffix, f"the number of rows of df{suffix}")
            x_stamps.append(time_features(x_index))
            y_indexes.append(timestamp_index(y_ts, pred_len, "y_timestamp" + suffix, "pred_len"))
        lengths = np.array([len(h) for h in histories])
        L, B = int(lengths.max()), len(histories)
        encoded = [encode(h, len(h), self.normalization, self.clip) for h in histories]
        x = np.zeros((B, L, 6), dtype=np.float32)
        x_stamp = np.zeros((B, L, 5), dtype=np.int64)
        for b, (h, enc) in enumerate(zip(histories, encoded)):
            x[b, L - len(h):] = enc.x
            x_stamp[b, L - len(h):] = x_stamps[b]
        y_stamp = np.stack([time_features(idx) for idx in y_indexes])
        paths = self.forecast_normalized(x, x_stamp, y_stamp, sampling, torch.as_tensor(lengths), generator, verbose).numpy()
        out = []
        for b, enc in enumerate(encoded):  # possible candles, repairs counted (kronos.inference.candles)
            candles, counts = candle_paths(paths[b], enc.mean, enc.std, enc.anchor, normalization=self.normalization,
                                           spread=sampling.spread)
            out.append(ForecastSamples(candles, y_indexes[b], repairs=CandleRepairs.from_array(counts)))
        return out
