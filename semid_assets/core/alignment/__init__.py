"""The collaborative-aware QFormer aligner: model, training, captions, held-out evaluation."""
