"""Precision and recall of the scanner per finding type on the labelled corpus."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from services.anomaly.risk.scanner import Scanner
from services.anomaly.risk.types import ALL_TYPES

CORPUS = Path(__file__).resolve().parent.parent / "data" / "risk_corpus.jsonl"
MIN_SCORE = 0.95


def corpus_metrics(scanner: Scanner) -> tuple[dict[str, tuple[float, float, int, int, int]], list[str]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    errors: list[str] = []
    for line in CORPUS.read_text().splitlines():
        row = json.loads(line)
        expected: Counter[str] = Counter(row["expected"])
        found: Counter[str] = Counter(m.finding_type for m in scanner.scan(row["text"]))
        for kind in set(expected) | set(found):
            tp[kind] += min(expected[kind], found[kind])
            fp[kind] += max(0, found[kind] - expected[kind])
            fn[kind] += max(0, expected[kind] - found[kind])
        if found != expected:
            errors.append(f"#{row['id']} expected {dict(expected)} found {dict(found)}: {row['text'][:120]!r}")
    out = {}
    for kind in sorted(ALL_TYPES):
        p = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else 1.0
        r = tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else 1.0
        out[kind] = (p, r, tp[kind], fp[kind], fn[kind])
    return out, errors


def test_corpus_has_enough_positives_and_hard_negatives() -> None:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines()]
    positives = [r for r in rows if r["expected"]]
    assert len(positives) >= 200
    assert len(rows) - len(positives) >= 200
    kinds = Counter(k for r in positives for k in r["expected"])
    assert set(kinds) == ALL_TYPES and min(kinds.values()) >= 10


@pytest.fixture(scope="module")
def measured() -> tuple[dict[str, tuple[float, float, int, int, int]], list[str]]:
    return corpus_metrics(Scanner())


def test_precision_and_recall_per_type(
    measured: tuple[dict[str, tuple[float, float, int, int, int]], list[str]],
) -> None:
    metrics, errors = measured
    table = "\n".join(f"{k:20} P={p:.3f} R={r:.3f} tp={t} fp={f} fn={n}" for k, (p, r, t, f, n) in metrics.items())
    low = {k: v for k, v in metrics.items() if v[0] < MIN_SCORE or v[1] < MIN_SCORE}
    assert not low, f"below {MIN_SCORE}:\n{table}\nmisclassified:\n" + "\n".join(errors[:40])


@pytest.mark.parametrize("kind", sorted(ALL_TYPES))
def test_every_type_is_actually_exercised(
    kind: str, measured: tuple[dict[str, tuple[float, float, int, int, int]], list[str]]
) -> None:
    metrics, _ = measured
    assert metrics[kind][2] >= 10  # true positives: a type the corpus never hits proves nothing


if __name__ == "__main__":
    # Prints the table that docs/risk.md records.
    figures, _ = corpus_metrics(Scanner())
    print("| type | precision | recall | TP | FP | FN |\n|---|---|---|---|---|---|")
    for name, (p, r, t, f, n) in figures.items():
        print(f"| {name} | {p:.3f} | {r:.3f} | {t} | {f} | {n} |")
