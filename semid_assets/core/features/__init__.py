"""Item features: the offline text encoder, its content-addressed token cache, multimodal token matrices."""
