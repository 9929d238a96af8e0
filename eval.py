"""Evaluate a base or fine-tuned model: batched greedy generation, task metrics, base vs fine-tuned.

    python eval.py --model_name_or_path outputs/instruct --dataset examples/instruct/test.json --metrics rouge,perplexity
    python eval.py --model_name_or_path outputs/instruct --dataset examples/instruct/test.json --compare_base
"""

import logging
import re

logger = logging.getLogger("eval")


# ---------------------------------------------------------------------------------------------------------------------
# Metrics. Each takes the evaluated rows (dicts with "prompt", "reference", "prediction" and every other column of the
# dataset row) and returns a flat dict of scores. A metric may add per-row fields (a verdict, the executed output):
# they are written to predictions.jsonl. Register it in METRICS at the bottom of this section.
# ---------------------------------------------------------------------------------------------------------------------


def normalize_text(text):
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def metric_exact_match(rows):
    for row in rows:
        row["exact_match"] = normalize_text(row["prediction"]) == normalize_text(row["reference"])
    return {"exact_match": sum(r["exact_match"] for r in rows) / max(len(rows), 1)}


def metric_rouge(rows):
    from rouge_score import rouge_scorer

    keys = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(keys, use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for row in rows:
        # rougeLsum splits summaries on newlines
        scores = scorer.score(row["reference"], row["prediction"])
        for key in keys:
            totals[key] += scores[key].fmeasure
    return {key: value / max(len(rows), 1) for key, value in totals.items()}


# --- task metrics (FinQA execution accuracy, skill call_match, SQL matches) go below this line ---


METRICS = {
    "exact_match": metric_exact_match,
    "rouge": metric_rouge,
}
