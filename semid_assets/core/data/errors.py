"""The error every refusal of bad input raises."""


class ContractError(ValueError):
    """Input data that breaks the documented table contract; the message names the fix."""
