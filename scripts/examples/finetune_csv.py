"""Fine-tune on a CSV end to end with the training command, then forecast from the export.

    python scripts/examples/finetune_csv.py --name my_csv [--csv FILE] [--from-pretrained] [--with-backtest] [overrides ...]

Runs ``python -m kronos.train stage=<s> data=csv data.source.path=<csv> name=<name> model=tiny`` for
the tokenizer and then the predictor stage (``stage=all``, adding the backtest, with
``--with-backtest``); with ``--from-pretrained`` training starts from --model/--tokenizer (the
fixture pair, or NeoQuasar ids when online): ``model.<kind>.pretrained`` only says where training
starts, so the predictor stage trains on the *fine-tuned* tokenizer the first command exported (its
training_info.json says so as ``tokenizer_source``). The exports land in outputs/<name>/{tokenizer,predictor};
the script then loads them and forecasts the last --pred-len rows of the CSV. Extra arguments are
passed to the training command as Hydra overrides (e.g. trainer.max_epochs=1).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from example_args import experiment_pair, load, parser, resolve, window

from kronos.data.features import FEATURES
from kronos.experiment import Experiment


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--name", default="example_csv", help="experiment name: outputs/<name>/")
    p.add_argument("--from-pretrained", action="store_true", help="fine-tune from --model/--tokenizer instead of a fresh tiny model")
    p.add_argument("--with-backtest", action="store_true", help="run stage=all (tokenizer, predictor, backtest)")
    args, overrides = p.parse_known_args()
    args = resolve(args)
    common = [
        "data=csv", f"data.source.path={args.csv.resolve()}", f"name={args.name}", "model=tiny",
        f"output_root={args.outputs_dir.resolve()}",
    ]
    if args.from_pretrained:
        common += [f"model.tokenizer.pretrained={args.tokenizer}", f"model.predictor.pretrained={args.model}"]
    for stage in ["all"] if args.with_backtest else ["tokenizer", "predictor"]:
        command = [sys.executable, "-m", "kronos.train", f"stage={stage}", *common, *overrides]
        print("running:", " ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            sys.exit(f"training stage {stage} failed (see its output above)")

    experiment = Experiment(args.outputs_dir / args.name)
    args.tokenizer, args.model = experiment_pair(experiment)
    info = json.loads((experiment.predictor_dir / "training_info.json").read_text())
    source = info["tokenizer_source"]
    print(f"the predictor trained on the {source['origin']} tokenizer {source['location']}")
    predictor, df = load(args)
    history, actual = window(df, len(df) - args.pred_len, args.lookback, args.pred_len)
    forecast = predictor.predict(
        df=history[list(FEATURES)], x_timestamp=history["timestamps"], y_timestamp=actual["timestamps"],
        pred_len=args.pred_len, T=1.0, top_p=0.9, sample_count=1, verbose=False,
    )
    mae = np.mean(np.abs(forecast["close"].to_numpy() - actual["close"].to_numpy()))
    print(f"forecast from {experiment.root}: close MAE {mae:.4f} over {args.pred_len} rows")


if __name__ == "__main__":
    main()
