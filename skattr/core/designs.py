"""Paired coalition designs for Kernel SHAP: strata by size, enumerated or sampled.

Kernel SHAP regresses the coalition values on the coalitions, weighted by
the Shapley kernel, whose total weight on the coalitions of size ``k`` is
``W_k = (g - 1) / (k (g - k))``. A :class:`PairedDesign` chooses which
coalitions to evaluate, for every row at once:

- **Pairs.** Every coalition ``S`` comes with its complement. The Shapley
  value depends only on the *odd part* ``(v(S) - v(N \\ S)) / 2`` of the
  game, which a pair measures exactly; a regression on pairs is exact for
  every game with interactions of order at most two.
- **Strata.** The pairs of sizes ``{k, g - k}`` form stratum ``k``
  (``1 <= k <= g / 2``; for even ``g`` the middle stratum's pairs both have
  size ``g / 2``). The budget is shared among the strata in proportion to
  a share per stratum (``"leverage"``: the same for every size, the
  leverage scores of the Shapley regression, Musco and Witter 2025;
  ``"kernel"``: the kernel weight ``W_k``), by water-filling: a stratum
  whose share covers all its pairs is enumerated completely (in practice the
  smallest and largest sizes first) and the rest is shared among the others.
- **Without replacement.** The pairs of a sampled stratum are distinct,
  uniformly drawn; each pair of stratum ``k`` carries the weight
  ``W_k / c_k`` per coalition (``c_k`` pairs drawn of it), the kernel weight
  itself when the stratum is complete, so that the regression is the exact
  Shapley regression once every stratum is complete.

A design can :meth:`~PairedDesign.grow` to a larger budget (``tol``'s
rounds): the allocation of the larger budget never takes pairs away from a
stratum, and new pairs differ from the old.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import torch

#: how a design shares its budget among the strata
ALLOCATIONS = ("leverage", "kernel")


def kernel_weight(g: int, k: torch.Tensor | int) -> torch.Tensor:
    """Total Shapley-kernel weight ``(g - 1) / (k (g - k))`` of the coalitions of size ``k``."""
    k = torch.as_tensor(k, dtype=torch.float64)
    return (g - 1) / (k * (g - k))


@dataclass(frozen=True)
class Strata:
    """The pair strata of ``g`` groups: stratum ``h`` holds the pairs of sizes
    ``(h + 1, g - h - 1)``."""

    g: int

    @property
    def sizes(self) -> list[int]:
        """The smaller size of each stratum's pairs, ``1 .. g // 2``."""
        return list(range(1, self.g // 2 + 1))

    def units(self) -> list[int]:
        """Pairs in each stratum: ``C(g, k)``, half of it for the middle one."""
        g = self.g
        return [math.comb(g, k) // (2 if 2 * k == g else 1) for k in self.sizes]

    def shares(self, allocation: str) -> list[float]:
        """The share of the budget each stratum gets before water-filling."""
        g = self.g
        out = []
        for k in self.sizes:
            both = 1 if 2 * k == g else 2  # sizes k and g - k
            if allocation == "leverage":
                out.append(float(both))
            else:
                out.append(float(both * kernel_weight(g, k)))
        return out


def allocate(
    units: list[int], shares: list[float], total: int, floor: list[int] | None = None
) -> list[int]:
    """Pairs per stratum: ``total`` shared in proportion to ``shares``.

    Water-filling: a stratum gets ``clip(level * share, floor, units)`` for
    the one ``level`` at which the counts add up to ``total`` (strata whose
    share would exceed their size are complete, the rest goes to the others),
    then rounded to integers by largest remainder, never below ``floor`` nor
    above ``units``.

    Examples
    --------
    >>> allocate([4, 6, 3], [2.0, 2.0, 1.0], 9)
    [4, 3, 2]
    >>> allocate([4, 6, 3], [2.0, 2.0, 1.0], 13)
    [4, 6, 3]
    """
    floor = [0] * len(units) if floor is None else list(floor)
    total = min(int(total), sum(units))
    total = max(total, sum(floor))
    # no stratum takes more than all the pairs: a size's count of coalitions
    # (a binomial, beyond a float from about 1,030 groups on) caps at that
    units = [min(int(u), total) for u in units]
    raw = _water_fill(units, shares, total, floor)
    counts = [
        min(max(int(math.floor(r + 1e-9)), f), u) for r, f, u in zip(raw, floor, units)
    ]
    order = sorted(range(len(raw)), key=lambda h: -(raw[h] - math.floor(raw[h] + 1e-9)))
    short = total - sum(counts)
    while short > 0:
        moved = False
        for h in order:
            if short and counts[h] < units[h]:
                counts[h] += 1
                short -= 1
                moved = True
        if not moved:
            break
    while short < 0:  # floors pushed the rounding over: take from the largest
        h = max(
            (h for h in range(len(counts)) if counts[h] > floor[h]),
            key=lambda h: counts[h] - raw[h],
        )
        counts[h] -= 1
        short += 1
    return counts


def _water_fill(units, shares, total, floor) -> list[float]:
    """``clip(level * share, floor, units)`` at the level where they sum to ``total``.

    The sum is piecewise linear and non-decreasing in the level, with kinks
    where a stratum leaves its floor or reaches its size: walk the kinks in
    order and solve on the segment that reaches ``total``.
    """
    kinks = sorted(
        {0.0}
        | {f / a for a, f in zip(shares, floor) if a > 0}
        | {u / a for a, u in zip(shares, units) if a > 0}
    )

    def filled(level: float) -> list[float]:
        return [min(max(level * a, f), u) for a, f, u in zip(shares, floor, units)]

    low = kinks[0]
    for high in kinks[1:]:
        if sum(filled(high)) >= total:
            a, b = sum(filled(low)), sum(filled(high))
            level = high if b == a else low + (high - low) * (total - a) / (b - a)
            return filled(level)
        low = high
    return filled(kinks[-1])


class PairedDesign:
    """Coalition pairs for Kernel SHAP, shared by every row (see the module doc).

    Parameters
    ----------
    g : int
        Number of groups (at least 2).
    allocation : {"leverage", "kernel"}
        How the budget is shared among the strata.
    generator : torch.Generator
        Source of the sampled pairs; they are drawn on its device.

    Attributes
    ----------
    S : Tensor of shape ``[m, g]``, bool
        One coalition of each pair (the other is its complement).
    stratum : Tensor of shape ``[m]``, long
        Stratum of each pair (its smaller size minus one).
    counts : list of int
        Pairs of each stratum.
    """

    def __init__(self, g: int, allocation: str, generator: torch.Generator):
        if allocation not in ALLOCATIONS:
            raise ValueError(
                f"allocation must be one of {ALLOCATIONS}; got {allocation!r}."
            )
        self.g = g
        self.strata = Strata(g)
        self.allocation = allocation
        self.generator = generator
        self.device = generator.device
        self.counts = [0] * len(self.strata.sizes)
        self.S = torch.zeros(0, g, dtype=torch.bool, device=self.device)
        self.stratum = torch.zeros(0, dtype=torch.long, device=self.device)

    @property
    def n_pairs(self) -> int:
        return int(self.S.shape[0])

    @property
    def complete(self) -> list[bool]:
        """Whether each stratum is enumerated completely."""
        return [c == u for c, u in zip(self.counts, self.strata.units())]

    @property
    def exact(self) -> bool:
        """Every proper coalition is in the design."""
        return all(self.complete)

    @property
    def sampled(self) -> torch.Tensor:
        """``[m]`` bool: the pair belongs to a stratum that is not complete."""
        done = torch.tensor(self.complete + [True], device=self.device)
        return ~done[self.stratum]

    def coalitions(self, new: slice | None = None) -> torch.Tensor:
        """The coalitions of the pairs, ``[2 m, g]``: each ``S`` then its complement."""
        S = self.S if new is None else self.S[new]
        return torch.stack([S, ~S], 1).reshape(-1, self.g)

    def weights(self) -> torch.Tensor:
        """``[m]`` float64: the kernel weight of each coalition of a pair.

        ``W_k / c_k`` for a pair of stratum ``k`` with ``c_k`` pairs (both
        coalitions carry it; a middle stratum's pairs share its weight
        ``W_{g/2}`` over ``2 c_k`` coalitions).
        """
        g = self.g
        out = []
        for h, k in enumerate(self.strata.sizes):
            c = max(self.counts[h], 1)
            w = kernel_weight(g, k) / c
            if 2 * k == g:
                w = w / 2
            out.append(w)
        table = torch.stack(out).to(self.device) if out else torch.zeros(0)
        return table[self.stratum]

    def snapshot(self) -> tuple:
        """The pairs drawn so far, for :meth:`restore`."""
        return list(self.counts), self.S, self.stratum

    def restore(self, snapshot: tuple) -> None:
        """Forget the pairs added since :meth:`snapshot` (the generator moves on)."""
        counts, self.S, self.stratum = snapshot
        self.counts = list(counts)

    def grow(self, n_pairs: int) -> slice:
        """Add pairs up to ``n_pairs`` in all; return the slice of the new ones."""
        start = self.n_pairs
        units = self.strata.units()
        # every stratum gets a pair once the budget allows: a regression
        # that misses a size altogether is biased, whatever its error bars say
        floor = [max(c, 1 if n_pairs >= len(units) else 0) for c in self.counts]
        target = allocate(units, self.strata.shares(self.allocation), n_pairs, floor)
        new_S, new_h = [], []
        need = {}
        for h, (have, want) in enumerate(zip(self.counts, target)):
            if want <= have:
                continue
            if want == units[h]:  # the whole stratum
                mine = self.S[self.stratum == h]
                add = _without(_all_pairs(self.g, h + 1, self.device), mine)
                new_S.append(add)
                new_h.append(torch.full((add.shape[0],), h, device=self.device))
            else:
                need[h] = want - have
            self.counts[h] = want
        if need:
            S, h = self._draw(need)
            new_S.append(S)
            new_h.append(h)
        if new_S:
            self.S = torch.cat([self.S, *new_S])
            self.stratum = torch.cat([self.stratum, *new_h])
        return slice(start, self.n_pairs)

    def _draw(self, need: dict[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``need[h]`` distinct new pairs of each stratum ``h``, none already drawn.

        Uniform subsets of size ``h + 1`` (for the middle stratum, those
        holding group 0, one per pair), for every stratum in one batch,
        deduplicated by their bit codes (different sizes never share a code)
        until each stratum has enough new ones.
        """
        g, gen, device = self.g, self.generator, self.device
        seen = _codes(self.S)
        got_S: list[torch.Tensor] = []
        got_h: list[torch.Tensor] = []
        left = dict(need)
        while left:
            strata = torch.tensor(list(left), device=device)
            counts = torch.tensor([2 * c + 4 for c in left.values()], device=device)
            h = torch.repeat_interleave(strata, counts)
            k = h + 1
            middle = 2 * k == g
            u = torch.rand(h.shape[0], g, generator=gen, device=device)
            u[:, 0] = torch.where(middle, -1.0, u[:, 0])  # group 0 first: in S
            S = u.argsort(1).argsort(1) < k[:, None]
            codes = _codes(S)
            keep = _first_new(codes, seen)
            S, h, codes = S[keep], h[keep], codes[keep]
            # the first new ones of each stratum, in the order drawn
            rank = torch.zeros_like(h)
            for stratum in left:
                mine = h == stratum
                rank[mine] = torch.arange(int(mine.sum()), device=device)
            quota = torch.zeros(g, dtype=torch.long, device=device)
            quota[strata] = torch.tensor(list(left.values()), device=device)
            take = rank < quota[h]
            got_S.append(S[take])
            got_h.append(h[take])
            seen = torch.cat([seen, codes[take]])
            done = torch.bincount(h[take], minlength=g)
            left = {
                s: c - int(done[s]) for s, c in left.items() if c - int(done[s]) > 0
            }
        S, h = torch.cat(got_S), torch.cat(got_h)
        order = torch.sort(h, stable=True).indices  # stratum by stratum
        return S[order], h[order]


def _all_pairs(g: int, k: int, device) -> torch.Tensor:
    """Every pair of sizes ``(k, g - k)``: all ``k``-subsets (holding group 0 when ``2k = g``)."""
    middle = 2 * k == g
    rows = [c for c in combinations(range(g), k) if not middle or c[0] == 0]
    S = torch.zeros(len(rows), g, dtype=torch.bool)
    if rows:
        idx = torch.tensor(rows)
        S[torch.arange(len(rows))[:, None], idx] = True
    return S.to(device)


def _codes(S: torch.Tensor) -> torch.Tensor:
    """Bit codes of coalitions ``[m, g]`` as ``[m, W]`` int64 words (62 bits each)."""
    m, g = S.shape
    words = max(1, -(-g // 62))
    pad = torch.zeros(m, words * 62 - g, dtype=torch.bool, device=S.device)
    bits = torch.cat([S, pad], 1).reshape(m, words, 62).long()
    return (bits << torch.arange(62, device=S.device)).sum(-1)


def _first_new(codes: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Indices of the rows of ``codes`` not in ``seen`` and not repeated earlier."""
    both = torch.cat([seen, codes])
    _, inverse = torch.unique(both, dim=0, return_inverse=True)
    n_seen = seen.shape[0]
    first = torch.full(
        (int(inverse.max()) + 1 if inverse.numel() else 0,),
        both.shape[0],
        dtype=torch.long,
        device=codes.device,
    )
    first = first.scatter_reduce(
        0, inverse, torch.arange(both.shape[0], device=codes.device), "amin"
    )
    own = torch.arange(codes.shape[0], device=codes.device) + n_seen
    is_first = first[inverse[n_seen:]] == own
    return torch.nonzero(is_first).flatten()


def _without(S: torch.Tensor, have: torch.Tensor) -> torch.Tensor:
    """The rows of ``S`` that are not in ``have``."""
    if have.shape[0] == 0:
        return S
    return S[_first_new(_codes(S), _codes(have))]
