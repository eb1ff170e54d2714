"""The per-group arithmetic the trainer references share, written from the method's definition (no sophia_trl)."""

import statistics


def normalized(values: list[float]) -> list[float]:
    """(x - mean) / (std + 1e-4) within a group, unbiased std, as GRPO normalises a group's rewards; 0 for fewer than
    two values."""
    if len(values) < 2:
        return [0.0] * len(values)
    m, s = statistics.fmean(values), statistics.stdev(values)
    return [(v - m) / (s + 1e-4) for v in values]


def length_neutral(said: list[float | None], lengths: list[int]) -> list[float | None]:
    """The scores less their least-squares line in the length, over the scored rows (mean kept)."""
    rows = [i for i, s in enumerate(said) if s is not None]
    if len(rows) < 2:
        return said
    mean_l, mean_t = statistics.fmean(lengths[i] for i in rows), statistics.fmean(said[i] for i in rows)
    var = sum((lengths[i] - mean_l) ** 2 for i in rows)
    if var == 0:
        return said
    slope = sum((lengths[i] - mean_l) * (said[i] - mean_t) for i in rows) / var
    return [None if s is None else s - slope * (n - mean_l) for s, n in zip(said, lengths)]
