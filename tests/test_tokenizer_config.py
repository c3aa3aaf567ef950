"""The tokenizer asset's launchpad config is generated from the library's options: every option of
every method reaches it with its description and default, and turns back into that method's options."""

from __future__ import annotations

import dataclasses

import pytest

from semid_assets.core.options import options_of
from semid_assets.core.tokenizers.base import QuantiserOptions
from semid_assets.core.tokenizers.methods import METHODS
from semid_assets.defs.tokenizer import tokenizer_config_class, tokenizer_options

SHARED = [option.name for option in options_of(QuantiserOptions)]


def _launchpad_fields(config_class) -> dict:
    """The fields the Dagster launchpad shows, as Dagster's own config schema holds them."""
    return config_class.to_config_schema().as_field().config_type.fields


@pytest.mark.parametrize("method", list(METHODS))
def test_every_option_of_every_method_reaches_the_launchpad_with_its_description(method):
    top = _launchpad_fields(tokenizer_config_class(16))
    section = top[method].config_type.fields
    assert top[method].description and not top[method].is_required
    for option in options_of(METHODS[method].Options):
        field = top[option.name] if option.name in SHARED else section[option.name]
        assert field.description and field.description.strip(), f"{method}.{option.name} has no description"
        if option.name == "codebook_size":  # the pipeline's field: unset means the size rule
            assert "size rule" in field.description
        else:
            assert field.description == option.doc
        default = field.default_value if field.default_provided else None
        expected = 16 if option.name == "codebook_size" else option.default
        assert default == (list(expected) if isinstance(expected, tuple) else expected), option.name
    # A section holds only its method's own options: the shared ones live at the top level.
    assert set(section) == {o.name for o in options_of(METHODS[method].Options)} - set(SHARED)
    assert {"anchor_to_previous", "anchor_iterations", "hysteresis"} <= set(top)
    assert top["anchor_to_previous"].description and top["anchor_iterations"].description


def test_config_turns_back_into_each_methods_options():
    Config = tokenizer_config_class(16)
    config = Config(codebook_size=8, seed=3, rq_vae={"epochs": 2, "hidden_dims": [64, 32]},
                    rq_kmeans_balanced={"balance_slack": 0.2})
    vae = tokenizer_options(config, "rq_vae", config.codebook_size)
    assert type(vae).__name__ == "RQVAEOptions"
    assert (vae.codebook_size, vae.seed, vae.epochs, vae.hidden_dims) == (8, 3, 2, (64, 32))
    balanced = tokenizer_options(config, "rq_kmeans_balanced", config.codebook_size)
    assert (balanced.codebook_size, balanced.balance_slack) == (8, 0.2)
    # Unset options keep the library's defaults, once written.
    letter = tokenizer_options(Config(), "letter", 16)
    assert letter == dataclasses.replace(METHODS["letter"].Options(), codebook_size=16)
    with pytest.raises(ValueError, match="balance_slack"):
        tokenizer_options(Config(rq_kmeans_balanced={"balance_slack": -1.0}), "rq_kmeans_balanced", 16)
    # Unset by default: the size rule decides (core/tokenizers/sizing.py).
    assert tokenizer_config_class()().codebook_size is None
