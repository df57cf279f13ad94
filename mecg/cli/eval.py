"""``mecg eval``: MEGC precision / recall / F1 of spotted intervals against annotations."""

from __future__ import annotations

import argparse
import json
import sys

from mecg.model.evaluate import PROTOCOLS, eval_notices, evaluate, read_predictions, read_truth


def _eval(args: argparse.Namespace) -> int:
    preds = read_predictions(args.pred)
    truth = read_truth(args.truth)
    for line in eval_notices(preds, truth, args.protocol):
        print(line, file=sys.stderr)
    res = evaluate(preds, truth, args.protocol)
    if args.json:
        print(json.dumps({k: v.as_dict() for k, v in res.items()}))
        return 0
    print(f"protocol {args.protocol}, IoU >= 0.5")
    print(f"{'':8} {'TP':>5} {'FP':>5} {'FN':>5} {'P':>7} {'R':>7} {'F1':>7}")
    for name, c in res.items():
        print(f"{name:8} {c.tp:>5} {c.fp:>5} {c.fn:>5} {c.precision:>7.4f} {c.recall:>7.4f} {c.f1:>7.4f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``eval`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "eval",
        help="MEGC evaluation of spotted intervals (IoU >= 0.5)",
        description="Precision, recall and F1 for ME, MaE and overall; IoU >= 0.5 on inclusive frames, counts "
        "summed over the dataset. --protocol one-to-one (default): greedy one-to-one matching by score, a "
        "duplicate is a false positive. --protocol megc2020: as the MEGC2020 spotting baseline counts, a ground "
        "truth is found when any prediction reaches IoU >= 0.5 with it, FP = predictions - found.",
    )
    p.add_argument("--pred", required=True, help="spot CSV from `mecg spot`")
    p.add_argument("--truth", required=True, help="a session, a folder of sessions, or an annotation CSV")
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=PROTOCOLS[0],
        help="how matches are counted (default one-to-one; docs/spotting.md, MEGC evaluation)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with me, mae, overall")
    p.set_defaults(func=_eval)
