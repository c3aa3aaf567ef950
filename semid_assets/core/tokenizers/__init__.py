"""Residual quantisers that turn vectors into semantic-ID codes, and the code tables they produce."""
