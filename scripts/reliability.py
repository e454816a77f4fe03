#!/usr/bin/env python
"""Reliability of guard's calibrated copy probability (issue 12) on an evaluation run.

    python scripts/reliability.py results.json [--bins 10]

Each segment guard reported in a ``scripts/eval.py`` run carries its calibrated probability
(its ``score``); its label says whether it was a copy (it names the query's reference and
overlaps the copied stretch, eval.py's rule; every segment on a negative is not). The bins set
the mean predicted probability beside the observed copy rate. ``scripts/eval.py`` calls
:func:`section` so its JSON keeps the labelled segments and its page gets the table.

Only reported segments are seen here, those at or above the decision threshold: the training
script (``scripts/train_calibration.py --reliability``) shows the bins below it, out of fold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guard import calibration  # noqa: E402


def labelled_segments(report: dict) -> list[dict]:
    """Every segment guard reported in an eval report, with its probability and label."""
    truths = {q["id"]: q for q in report["corpus"]["queries"]}
    out = []
    for row in report["guard"]["queries"]:
        query = truths[row["id"]]
        for d in row["detections"]:
            copy = d["reference"] == query["reference"] and min(d["query_end"], query["truth"]["query_end"]) > max(
                d["query_start"], query["truth"]["query_start"])
            out.append(_row(row["id"], "query", d, int(copy)))
    for row in report["guard"]["negatives"]:
        out += [_row(row["id"], "negative", d, 0) for d in row["detections"]]
    return out


def _row(file: str, kind: str, detection: dict, label: int) -> dict:
    return {"file": file, "kind": kind, "reference": detection["reference"],
            "query_start": detection["query_start"], "query_end": detection["query_end"],
            "probability": detection["score"], "label": label}


def section(report: dict, bins: int = 10) -> str:
    """Record the labelled segments and the bins in ``report["guard"]["calibration"]``; return
    the Markdown that follows the results table."""
    segments = [s for s in labelled_segments(report) if s["probability"] is not None]
    rows = calibration.reliability([s["probability"] for s in segments], [s["label"] for s in segments], bins)
    model = calibration.default()
    report["guard"]["calibration"] = {"threshold": model.threshold, "segments": segments, "bins": rows,
                                      "model": {k: model.info.get(k) for k in ("training", "false_incident_rate")}}
    if not segments:
        return "\n\nReliability of the calibrated probability: no segment reported."
    return ("\n\nReliability of the calibrated probability (issue 12) over the "
            f"{len(segments)} reported segments (decision threshold {model.threshold:.2f}; "
            "a copy: the right reference, overlapping the copied stretch):\n\n"
            + calibration.reliability_markdown(rows))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="scripts/eval.py's JSON")
    parser.add_argument("--bins", type=int, default=10)
    args = parser.parse_args(argv)
    report = json.loads(args.results.read_text())
    print(section(report, args.bins).strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
