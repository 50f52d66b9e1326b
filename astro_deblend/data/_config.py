"""What the configuration dataclasses of astro_deblend.data share."""

import dataclasses

__all__ = []


def config_to_dict(config, optional):
    """``dataclasses.asdict(config)`` as JSON-ready values, leaving out the ``optional`` fields that keep
    their default (so that the records of samples made before those options existed still match)."""
    out = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if f.name in optional and out[f.name] == f.default:
            del out[f.name]
        elif isinstance(out[f.name], tuple):
            out[f.name] = list(out[f.name])
    return out


def uses_options(config, optional):
    """True when any of the ``optional`` fields differs from its default."""
    return any(getattr(config, f.name) != f.default for f in dataclasses.fields(config) if f.name in optional)
