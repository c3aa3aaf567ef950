"""Collaborative signals: Swing item-to-item similarity, item pairs, BPR item factors."""
