"""Judging tokenizer versions: stability across versions, hierarchy, method comparison, ranking AUC."""
