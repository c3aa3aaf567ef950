"""One rule for config: every library option reaches the launchpad (or a resource) with its default and description."""

from __future__ import annotations

import pytest

from semid_assets.core.alignment.config import AlignerTrainConfig
from semid_assets.core.collaborative.bpr import BPROptions
from semid_assets.core.collaborative.pairs import PairConfig
from semid_assets.core.lifecycle.gate import AlignerGate, GenerationPolicy
from semid_assets.core.lifecycle.publish import PublishOptions
from semid_assets.core.options import options_of
from semid_assets.defs.alignment import AlignerConfig
from semid_assets.defs.collaborative import CollaborativeConfig
from semid_assets.defs.pairs import PairsConfig
from semid_assets.defs.publication import SemanticIdConfig
from semid_assets.resources import AlignerGateResource, GenerationPolicyResource

CASES = [(AlignerConfig, AlignerTrainConfig, ()), (PairsConfig, PairConfig, ()), (CollaborativeConfig, BPROptions, ()),
         (SemanticIdConfig, PublishOptions, ("hysteresis", "cut_generation")),
         (GenerationPolicyResource, GenerationPolicy, ()), (AlignerGateResource, AlignerGate, ())]


@pytest.mark.parametrize("config, options, set_elsewhere", CASES, ids=[c[0].__name__ for c in CASES])
def test_every_option_reaches_the_launchpad_with_its_default_and_description(config, options, set_elsewhere):
    fields = config.to_config_schema().as_field().config_type.fields
    for option in options_of(options):
        if option.name in set_elsewhere:
            assert option.name not in fields
            continue
        field = fields[option.name]
        assert option.doc and field.description == option.doc, option.name
        default = field.default_value if field.default_provided else None
        expected = list(option.default) if isinstance(option.default, tuple) else option.default
        assert default == expected, option.name


def test_a_resource_gives_its_options_back():
    assert GenerationPolicyResource(min_mse_gain=0.2).options() == GenerationPolicy(min_mse_gain=0.2)
    assert AlignerGateResource().options() == AlignerGate()
