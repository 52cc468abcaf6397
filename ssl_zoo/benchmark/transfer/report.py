"""The Table-3-shaped report of ``--task transfer`` (BYOL App. D, Table 3).

Columns: dataset, metric, mode, ours, the paper's BYOL number (ResNet-50 1x, ImageNet-pretrained,
PROTOCOLS.md s.5), and the protocol actually run (so a reduced run is never mistaken for the paper's).
"""
from __future__ import annotations

from typing import Dict, List

from tabulate import tabulate

from ssl_zoo.benchmark.transfer.splits import SplitRule

__all__ = ["protocol_text", "transfer_table"]


def _val_text(rule: SplitRule, n_val: int) -> str:
    if rule.kind == "official":
        return f"creators' val ({n_val})"
    if rule.kind == "fraction":
        return f"val {n_val} = {rule.fraction:.0%} per class"
    if rule.kind == "test_count":
        return f"val {n_val} = test count per class"
    return f"val {n_val} = {rule.val_per_class}/class"


def protocol_text(mode: str, cfg, n_val: int, rule: SplitRule, budget: str, result: Dict) -> str:
    """One line describing the protocol of a result row."""
    s = cfg.INPUT.IMAGE_SIZE
    if mode == "linear":
        t = cfg.BENCHMARK.TRANSFER
        return (f"L-BFGS logistic regression, {t.LAMBDA_NUM} lambdas in [{t.LAMBDA_MIN:g}, {t.LAMBDA_MAX:g}] "
                f"(chosen {result['best_lambda']:.3g}), {_val_text(rule, n_val)}, refit train+val; "
                f"{s}px shorter-side bicubic + centre crop")
    text = (f"fine-tune SGD Nesterov, {result['steps']} steps x {cfg.BENCHMARK.TRANSFER.FINETUNE.BATCH_SIZE}, "
            f"{len(result['val_score_grid'])} (lr, wd) pairs (chosen lr {result['best_lr']:.3g}, wd "
            f"{result['best_wd']:.3g}), {_val_text(rule, n_val)}, refit train+val; {s}px")
    if budget == "small":
        text = "BUDGET SMALL (reduced grid and steps, not the paper's protocol): " + text
    return text


def transfer_table(rows: List[Dict]) -> str:
    """GitHub-markdown table of the result rows (missing datasets listed as such)."""
    table = []
    for r in rows:
        if r.get("status") == "missing":
            table.append([r["dataset"], "", "", "missing", "", r.get("error", "")[:80]])
            continue
        paper = "" if r.get("paper_byol") is None else f"{r['paper_byol']:.1f}"
        table.append([r["dataset"], r["metric"], r["mode"].split(":")[0], f"{r['score']:.2f}", paper, r["protocol"]])
    return tabulate(table, headers=["dataset", "metric", "mode", "ours", "paper BYOL (R50, IN-1k)", "protocol"],
                    tablefmt="github")
