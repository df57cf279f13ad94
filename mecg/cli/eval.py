"""``mecg eval``: MEGC precision / recall / F1 of spotted intervals against annotations."""

from __future__ import annotations

import argparse
import json

from mecg.model.evaluate import evaluate_spots


def _eval(args: argparse.Namespace) -> int:
    res = evaluate_spots(args.pred, args.truth)
    if args.json:
        print(json.dumps({k: v.as_dict() for k, v in res.items()}))
        return 0
    print(f"{'':8} {'TP':>5} {'FP':>5} {'FN':>5} {'P':>7} {'R':>7} {'F1':>7}")
    for name, c in res.items():
        print(f"{name:8} {c.tp:>5} {c.fp:>5} {c.fn:>5} {c.precision:>7.4f} {c.recall:>7.4f} {c.f1:>7.4f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``eval`` to the ``mecg`` parser."""
    p = sub.add_parser(
        "eval",
        help="MEGC evaluation of spotted intervals (IoU >= 0.5)",
        description="Precision, recall and F1 for ME, MaE and overall; IoU >= 0.5 on inclusive "
        "frames, one-to-one greedy matching by score, counts summed over the dataset.",
    )
    p.add_argument("--pred", required=True, help="spot CSV from `mecg spot`")
    p.add_argument("--truth", required=True, help="a session, a folder of sessions, or an annotation CSV")
    p.add_argument("--json", action="store_true", help="print one JSON object with me, mae, overall")
    p.set_defaults(func=_eval)
