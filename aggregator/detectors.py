"""Robust detectors, chosen by name in the aggregator's config and run in order.

Each detector is a plain function ``detector(batch, active, **params) -> list[Finding]`` over the
valid updates of one round (a ``(k, d)`` stack in submission order). ``active`` marks the updates
no earlier detector flagged; statistics are computed over those only, so a pack of copies or
free-riders cannot drag the consensus. The first detector to flag an update names the reason.

A flag is a slash, so it needs evidence an honest trainer does not produce. Where a detector has
only a direction that an honest shard with skewed labels produces too (against the owner's
reference update, as in FLTrust: a negative cosine, or one far below the round's), its flag is *provisional*: the round settles it by the
validation set (``aggregator.round.settle_provisional``), which flags the update only if its
contribution is harmful beyond the validation noise and otherwise leaves it out of the round (no
model, no pay) unflagged (``Verdict.excluded``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from backend.errors import ConfigError

COPY = "copy"
FREE_RIDER = "free_rider"
OUTLIER = "outlier"
EXCLUDED = "excluded"  # not a flag: left out of the round's model and pay, never slashed
MAD_SCALE = 1.4826  # MAD -> standard deviation for a normal distribution


@dataclass
class DetectionBatch:
    updates: np.ndarray  # (k, d) float32: the valid updates, submission order
    digests: Sequence[str] = ()  # sha256 of each update's bytes (exact-copy check)
    reference: np.ndarray | None = None  # FLTrust reference update from the owner's data
    last_step: np.ndarray | None = None  # the last global step (public): what a delta free-rider replays

    def __post_init__(self) -> None:
        self.updates = np.asarray(self.updates)
        self._norms: np.ndarray | None = None
        self._reference_cosines: np.ndarray | None = None

    @property
    def k(self) -> int:
        return self.updates.shape[0]

    @property
    def norms(self) -> np.ndarray:
        if self._norms is None:
            self._norms = np.sqrt(np.einsum("ij,ij->i", self.updates, self.updates, dtype=np.float64))
        return self._norms

    def noise_cosine(self, z: float) -> float:
        """``z`` standard deviations of the cosine between a random direction and any fixed one,
        1/sqrt(d): the bound within which noise stays."""
        return z / np.sqrt(max(self.updates.shape[1], 1))

    @property
    def reference_cosines(self) -> np.ndarray | None:
        """Cosine of each update with the reference (None without one), computed once per batch:
        the free-rider and direction detectors both read it."""
        if self.reference is None:
            return None
        if self._reference_cosines is None:
            self._reference_cosines = _cosines(self.updates, self.norms, np.asarray(self.reference))
        return self._reference_cosines


@dataclass
class Finding:
    flagged: bool = False
    reason: str | None = None
    detail: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    provisional: bool = False  # flagged only if the validation set finds the update harmful


Detector = Callable[..., list[Finding]]


def _cosines(updates: np.ndarray, norms: np.ndarray, direction: np.ndarray) -> np.ndarray:
    dnorm = float(np.linalg.norm(direction.astype(np.float64)))
    dots = updates.astype(np.float64) @ direction.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = dots / (norms * dnorm)
    return np.nan_to_num(cos, nan=0.0, posinf=0.0, neginf=0.0)


def _median_vector(updates: np.ndarray, active: np.ndarray) -> np.ndarray:
    return np.median(updates[active].astype(np.float64), axis=0)


LEAVE_ONE_OUT_MAX = 32


def _consensus_cosines(batch: DetectionBatch, active: np.ndarray) -> np.ndarray:
    """Cosine of each update with the coordinate-wise median of the active updates. Up to
    ``LEAVE_ONE_OUT_MAX`` of them, each is compared with the median of the *others*: in a small
    round one noisy update drags the median toward itself enough to look half-aligned."""
    idx = np.flatnonzero(active)
    if len(idx) > LEAVE_ONE_OUT_MAX:
        return _cosines(batch.updates, batch.norms, _median_vector(batch.updates, active))
    out = _cosines(batch.updates, batch.norms, _median_vector(batch.updates, active))
    x = batch.updates[idx].astype(np.float64)
    for pos, i in enumerate(idx):
        others = np.median(np.delete(x, pos, axis=0), axis=0)
        out[i] = _cosines(batch.updates[i : i + 1], batch.norms[i : i + 1], others)[0]
    return out


def _robust_z(values: np.ndarray, active: np.ndarray, sigma_floor: float) -> np.ndarray:
    center = float(np.median(values[active]))
    mad = float(np.median(np.abs(values[active] - center)))
    return (values - center) / max(MAD_SCALE * mad, sigma_floor)


def copy_detector(
    batch: DetectionBatch, active: np.ndarray, near: float = 0.05, min_cosine: float = 0.5, noise_z: float = 5.0
) -> list[Finding]:
    """An update byte-identical to, or within relative distance ``near`` of, an earlier one is a
    copy. The earlier submission wins, even if something else flags it later.

    A copy hidden under noise is caught by what the noise leaves: an update that resembles an earlier
    submission or the last global step (cosine at least ``min_cosine``) and differs from it only by
    noise. Its part orthogonal to that source is checked against the reference update and the
    median of the other updates: learning leaves a trace on at least one of them, while noise stays
    within ``noise_z`` standard deviations of a random direction's cosine (1/sqrt(d)). That is a
    property of noise, not a threshold fitted to a market; honest updates that merely resemble each
    other (label-skewed shards of the same class) differ by what they learned and are kept."""
    out = [Finding() for _ in range(batch.k)]
    seen: dict[str, int] = {}
    x = batch.updates.astype(np.float64)
    sq = batch.norms**2
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * (x @ x.T), 0.0))
    for i in range(batch.k):
        if not active[i]:
            continue
        digest = batch.digests[i] if i < len(batch.digests) else None
        if digest is not None and digest in seen:
            out[i] = Finding(True, COPY, f"identical to submission #{seen[digest]}", {"copy_distance": 0.0})
            continue
        if digest is not None:
            seen.setdefault(digest, i)
        if i == 0:
            continue
        relative = dist[i, :i] / np.maximum(batch.norms[:i], 1e-12)
        j = int(np.argmin(relative))
        best = float(relative[j])
        out[i].scores["copy_distance"] = round(best, 6)
        if best <= near and batch.norms[j] > 0:
            out[i] = Finding(
                True, COPY, f"within {best:.3g} relative distance of submission #{j}", {"copy_distance": round(best, 6)}
            )
    _noisy_copies(batch, active, out, min_cosine, batch.noise_cosine(noise_z), near)
    return out


def _noisy_copies(
    batch: DetectionBatch,
    active: np.ndarray,
    out: list[Finding],
    min_cosine: float,
    noise_cosine: float,
    near: float = 0.05,
) -> None:
    """Flag (in ``out``) updates that are another submission or the last global step, scaled (what
    is left orthogonal to it is within ``near`` of the update's norm) or plus noise.

    For each source that update ``i`` resembles (cosine at least ``min_cosine``), its residual (its
    part orthogonal to the source) is compared with what each witness says beyond that source:
    every other unflagged update, their coordinate-wise median and the owner's reference, each
    orthogonalised against the source. If ``i`` is the source plus noise, the residual is that noise,
    independent of all of them: each cosine is ~N(0, 1/d), and even the largest of a few dozen stays
    within ``noise_cosine`` (5 standard deviations). An honest update shares what it learned beyond
    any source with someone. The median alone is not enough: it sits with the smallest steps
    (measured: an 800-digit trainer's residual against a 600-digit trainer's update had cosine 0.006
    with the median and 0.30 with the 700-digit trainer's update).

    Sources are every other submission, earlier or later (a copier may come first in a chain). When
    two updates are each the other plus noise (the original's residual against a copy with little
    noise holds little of its own learning), the later one is the copy, as with exact copies. A flagged copier is neither a source nor a witness, and the check runs
    again without it until no flag changes: a second copier chained on the first shares the first
    one's noise and would vouch for it."""
    idx = [int(i) for i in np.flatnonzero(active) if not out[i].flagged and batch.norms[i] > 0]
    if len(idx) < 2 and batch.last_step is None:
        return
    extra = [v for v in (batch.last_step, batch.reference) if v is not None]
    last = batch.k if batch.last_step is not None else None
    ref = batch.k + len(extra) - 1 if batch.reference is not None else None
    y = np.concatenate([batch.updates.astype(np.float64), *(np.asarray(v, dtype=np.float64)[None, :] for v in extra)])
    witnesses = _Witnesses(y, [] if ref is None else [ref], noise_cosine)
    gram, norms = witnesses.gram, witnesses.norms
    changed = True
    while changed:
        changed = False
        witnesses.start_pass([i for i in idx if not out[i].flagged])
        for i in idx:
            if out[i].flagged:
                continue
            candidates = [j for j in witnesses.unflagged if j != i]
            candidates += [last] if last is not None and norms[last] > 0 else []
            cosines = {s: float(gram[i, s] / (norms[i] * norms[s])) for s in candidates}
            sources = sorted((s for s in candidates if cosines[s] >= min_cosine), key=lambda s: -cosines[s])
            for s in sources:
                finding = _copy_of(witnesses, i, s, cosines[s], s == last, near, noise_cosine, out[i].scores)
                if s == sources[0] and "copy_residual_trace" in finding.scores:
                    out[i].scores.update(finding.scores)  # what the closest source says, flagged or not
                if finding.flagged:
                    out[i], changed = finding, True
                    break


def _copy_of(
    witnesses: _Witnesses,
    i: int,
    s: int,
    cos: float,
    is_last: bool,
    near: float,
    noise_cosine: float,
    scores: dict[str, float],
) -> Finding:
    """Whether update ``i`` is source ``s`` scaled or plus noise (a flagged Finding), and its scores."""
    name = "the last global step" if is_last else f"submission #{s}"
    left = 1.0 - cos**2  # the residual's squared share of the update's norm
    if left <= near**2:  # a scaled copy: the earlier of the two (or the last step) is the original
        if not is_last and s > i:
            return Finding()
        detail = f"{name} scaled (cos {cos:.5f}: what differs is {np.sqrt(max(left, 0.0)):.3g} of its norm)"
        return Finding(True, COPY, detail, {**scores, "copy_cosine": round(cos, 6)})
    trace = witnesses.trace(i, s)
    if trace is None:
        return Finding()
    found = {**scores, "copy_cosine": round(cos, 6), "copy_residual_trace": round(trace, 6)}
    if trace >= noise_cosine:
        return Finding(scores=found)
    if not is_last and s > i:
        # a later source that is as much this update plus noise is the copy, this the original: at
        # little noise the original's residual holds little of its own learning
        reverse = witnesses.trace(s, i)
        if reverse is not None and reverse < noise_cosine:
            return Finding(scores=found)
    detail = (
        f"{name} plus noise (cos {cos:.3f}; what differs is noise: its cosine with what others learn is {trace:.4f})"
    )
    return Finding(True, COPY, detail, found)


class _Witnesses:
    """What a residual is checked against, from one Gram matrix of the rows ``y`` (updates, then the
    last step and the reference): the unflagged updates, the rows ``extra`` (the reference), and the
    coordinate-wise median of the unflagged updates other than the two compared. The median is only
    computed when no single witness already holds ``enough`` (the noise bound): then the verdict
    needs it. Then each coordinate's values are sorted, once per round of checks, so a median costs
    one pass over the coordinates."""

    def __init__(self, y: np.ndarray, extra: list[int], enough: float):
        self.y, self.extra, self.enough = y, extra, enough
        self.gram = y @ y.T
        self.norms = np.sqrt(np.maximum(np.diag(self.gram), 0.0))
        self.start_pass([])

    def start_pass(self, unflagged: list[int]) -> None:
        self.unflagged = unflagged
        self._medians: dict[frozenset[int], tuple[dict[int, float], float] | None] = {}
        self._sorted = self._rank = None  # sorted on the first median a pass needs: most need none

    def _sort(self) -> None:
        """Each coordinate's values sorted once, and each member's rank among them: a median without
        some members is then read off the sorted values, never sorted again."""
        members = np.ascontiguousarray(self.y[self.unflagged].T)  # one row per coordinate: sorts in place, fast
        order = np.argsort(members, axis=1, kind="stable")
        self._sorted = np.take_along_axis(members, order, axis=1)
        self._rank = np.empty(order.shape, dtype=np.int32)
        np.put_along_axis(self._rank, order, np.arange(len(self.unflagged), dtype=np.int32)[None, :], axis=1)

    def _median(self, a: int, source: int) -> tuple[float, float, float] | None:
        """The coordinate-wise median m of the unflagged updates but ``a`` and ``source``, as
        (a·m, source·m, m·m); None with fewer than two of them."""
        key = frozenset((a, source))
        if key not in self._medians:
            out = [self.unflagged.index(j) for j in key if j in self.unflagged]
            left = len(self.unflagged) - len(out)
            if left < 2:
                self._medians[key] = None
            else:
                median = self._median_without(out, left)
                self._medians[key] = ({j: float(self.y[j] @ median) for j in key}, float(median @ median))
        record = self._medians[key]
        if record is None:
            return None
        dots, norm2 = record
        return dots[a], dots[source], norm2

    def _median_without(self, out: list[int], left: int) -> np.ndarray:
        """The coordinate-wise median of the unflagged updates but those at positions ``out`` (of
        ``self.unflagged``; ``left`` remain), read off each coordinate's sorted values."""
        if self._sorted is None:
            self._sort()
        s = self._sorted
        ranks = np.sort(self._rank[:, out], axis=1) if out else np.zeros((len(s), 0), dtype=np.int32)

        def at(h: int) -> np.ndarray:  # the h-th smallest of what remains in each coordinate
            pos = np.full(len(s), h)
            for r in ranks.T:  # ascending: each removed entry at or before the position shifts it by one
                pos += r <= pos
            return np.take_along_axis(s, pos[:, None], axis=1)[:, 0]

        return at(left // 2) if left % 2 else (at(left // 2 - 1) + at(left // 2)) / 2

    def trace(self, a: int, source: int) -> float | None:
        """The largest |cos| of row ``a``'s residual against row ``source`` with each witness's part
        beyond the source, (a - proj a)·(b - proj b) = a·b - (a·s)(b·s)/(s·s); None if no witness
        holds anything beyond it."""
        g = self.gram
        ss, ra = g[source, source], g[a, a] - g[a, source] ** 2 / g[source, source]
        if ra <= 1e-24 * g[a, a]:
            return None
        rows = np.array([j for j in self.unflagged if j != a and j != source] + self.extra, dtype=int)
        dots = g[a, rows] - g[a, source] * g[rows, source] / ss
        rb = g[rows, rows] - g[rows, source] ** 2 / ss
        held = rb > 1e-24 * np.maximum(g[rows, rows], 1e-300)  # nothing beyond the source: no witness
        best = float(np.max(np.abs(dots[held]) / np.sqrt(ra * rb[held]))) if held.any() else None
        if best is not None and best >= self.enough:
            return best  # settled: no median needed
        median = self._median(a, source)
        if median is None:
            return best
        ma, ms, mm = median
        rm = mm - ms**2 / ss
        if rm <= 1e-24 * max(mm, 1e-300):
            return best
        traced = abs(float(ma - g[a, source] * ms / ss)) / float(np.sqrt(ra * rm))
        return traced if best is None else max(best, traced)


def split_detector(
    batch: DetectionBatch, active: np.ndarray, relative: float = 0.25, z: float = 3.5, min_updates: int = 5
) -> list[Finding]:
    """Sybils that split one update over several identities by coordinates: each piece carries the
    update's energy on its own share of the coordinates, so two pieces barely overlap where honest
    updates (dense: every weight moves) always do. For each update, the overlap of its coordinate
    magnitudes (cosine of |u_i| and |u_j|) with the earlier update it overlaps least is compared with
    the round's typical least overlap: far below it (under ``relative`` x the median and more than ``z`` robust
    deviations below it) it is a piece of a split, and so is the earlier update it barely overlaps.
    Every piece is flagged, the first included: none of them is an update anyone trained (their mean
    is), and a kept first piece was paid as much as one honest trainer for the whole split. Nobody can
    aim a piece at another trainer's update to have it flagged: updates are committed before any is
    revealed."""
    out = [Finding() for _ in range(batch.k)]
    idx = np.flatnonzero(active)
    if len(idx) < min_updates:
        return out
    mags = np.abs(batch.updates[idx].astype(np.float64))
    norms = np.linalg.norm(mags, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = np.nan_to_num((mags @ mags.T) / np.outer(norms, norms), nan=1.0)
    least = np.ones(len(idx))
    partner = np.full(len(idx), -1)
    for pos in range(1, len(idx)):
        partner[pos] = int(np.argmin(overlap[pos, :pos]))
        least[pos] = overlap[pos, partner[pos]]
    # the round's typical least overlap (the first update has no earlier one to overlap)
    center = float(np.median(least[1:]))
    spread = max(MAD_SCALE * float(np.median(np.abs(least[1:] - center))), 1e-12)
    far = [
        pos > 0 and least[pos] < relative * center and (least[pos] - center) / spread < -z for pos in range(len(idx))
    ]
    # the first piece: the earlier update a later piece barely overlaps (and not itself a later piece)
    first = {int(partner[pos]): pos for pos in range(len(idx)) if far[pos] and not far[partner[pos]]}
    for pos, i in enumerate(idx):
        scores = {"overlap_least": round(float(least[pos]), 6)}
        if far[pos]:
            detail = (
                f"a piece of a split update: its coordinates overlap submission #{idx[partner[pos]]}'s "
                f"{least[pos]:.3f} where the round's updates overlap {center:.3f}"
            )
        elif pos in first:
            later = first[pos]
            detail = (
                f"the first piece of a split update: submission #{idx[later]}'s coordinates overlap its "
                f"{least[later]:.3f} where the round's updates overlap {center:.3f}"
            )
        else:
            detail = ""
        out[i] = Finding(bool(detail), COPY if detail else None, detail, scores)
    return out


def free_rider_detector(
    batch: DetectionBatch,
    active: np.ndarray,
    min_relative_norm: float = 0.05,
    min_cosine: float = 0.05,
    noise_z: float = 5.0,
    max_noise_ratio: float | None = None,
    use_reference: bool = True,
    min_updates: int = 3,
) -> list[Finding]:
    """Negligible norm (below ``min_relative_norm`` x the median norm, or zero) and aligned with
    neither the consensus nor the reference beyond noise, or "global model plus noise": an update
    unaligned with the consensus, of any size (``max_noise_ratio``, None by default, caps the size
    x the median norm it is judged at). A cap at 3x used to leave larger ones to the outlier
    detectors, and at Dirichlet 0.5 pure noise 3-5x the median norm was no outlier of the spread
    honest norms: scored, and paid 1 % of the budget.

    Unaligned means |cos| against the coordinate-wise median below ``min_cosine``, or below
    ``noise_z`` standard deviations of the cosine of a random direction (1/sqrt(d)) if that is
    lower: late in training honest updates agree only weakly (cos ~0.04 on the 97k-parameter CNN),
    while noise stays at ~1/sqrt(d) (~0.003).

    With a reference update (``use_reference``), an update unaligned with the consensus is noise
    only if it is unaligned with the reference as well: with label-skewed data an honest shard can
    be orthogonal to the median of the others and still learn what the owner's data teaches.

    A small update that is aligned is a small shard's training, not free-riding (measured: an honest
    Dirichlet 0.1 trainer's update at 0.03 x the median norm was slashed as negligible); it is scored
    like any other. A zero update is always negligible."""
    out = [Finding() for _ in range(batch.k)]
    if batch.k:
        min_cosine = min(min_cosine, batch.noise_cosine(noise_z))
    norms = batch.norms
    if not active.any():
        return out
    median_norm = float(np.median(norms[active]))
    # negligible updates would pull the consensus toward zero: leave them out of it
    training = active & (norms > max(1e-12, min_relative_norm * median_norm))
    cos = cos_ref = None
    if training.sum() >= min_updates:
        cos = _consensus_cosines(batch, training)
    if use_reference:
        cos_ref = batch.reference_cosines
    for i in np.flatnonzero(active):
        ratio = norms[i] / median_norm if median_norm > 0 else 0.0
        scores = {"relative_norm": round(float(ratio), 6)}
        if cos is not None:
            scores["cos_consensus"] = round(float(cos[i]), 6)
        if cos_ref is not None:
            scores["cos_reference"] = round(float(cos_ref[i]), 6)
        unaligned = cos is not None and abs(cos[i]) < min_cosine and (cos_ref is None or abs(cos_ref[i]) < min_cosine)
        aligned = (cos is not None and cos[i] > min_cosine) or (cos_ref is not None and cos_ref[i] > min_cosine)
        if norms[i] <= 1e-12 or (ratio < min_relative_norm and not aligned):
            out[i] = Finding(True, FREE_RIDER, f"negligible update (norm {norms[i]:.3g}, {ratio:.3g} x median)", scores)
        elif ratio < min_relative_norm:
            out[i] = Finding(scores=scores)  # small but it learned what the others or the owner's data teach
        elif unaligned and (max_noise_ratio is None or ratio <= max_noise_ratio):
            against = (
                f"the consensus (cos {cos[i]:.3f})"
                if cos_ref is None
                else f"both the consensus (cos {cos[i]:.3f}) and the owner's reference update (cos {cos_ref[i]:.3f})"
            )
            out[i] = Finding(True, FREE_RIDER, f"uncorrelated with {against}: noise, not training", scores)
        else:
            out[i] = Finding(scores=scores)
    return out


def norm_detector(
    batch: DetectionBatch,
    active: np.ndarray,
    z: float = 3.5,
    sigma_floor: float = 0.25,
    min_updates: int = 3,
    needs_harm: bool = True,
    noise_z: float = 5.0,
) -> list[Finding]:
    """Norms far above the rest: robust z-score of log-norm against median/MAD (floored, so that a
    tight honest cluster does not make every small deviation an outlier).

    With ``needs_harm`` (the default), the flag on an update that points the way the others or the
    owner's reference do (cosine with the median of the others, or with the reference, above
    ``noise_z`` standard deviations of a random direction's, 1/sqrt(d)) is *provisional*, as the
    reference's: an honest shard of one or two
    classes takes bigger steps than the rest (measured at Dirichlet 0.1: honest norms 2.7x and 4.7x
    the median, 4.0 and 6.2 robust deviations), so its size alone is no evidence of an attack. The
    round flags it if, joined to the others, it harms the validation metric beyond its noise, and
    otherwise leaves it out (no model, no pay, no slash): a boosted update enters the model neither
    way. A large update aligned with neither (noise) or against both is flagged outright. (A one-class
    shard late in training can be orthogonal to the others' median, 0.003 at Dirichlet 0.1, and still
    point the way of the owner's reference, 0.31.)"""
    out = [Finding() for _ in range(batch.k)]
    if active.sum() < min_updates:
        return out
    log_norms = np.log(np.maximum(batch.norms, 1e-30))
    scores = _robust_z(log_norms, active, sigma_floor)
    aligned = np.zeros(batch.k, dtype=bool)
    if needs_harm and (scores[active] > z).any():
        noise = batch.noise_cosine(noise_z)
        aligned = _consensus_cosines(batch, active) > noise
        if batch.reference_cosines is not None:
            aligned |= batch.reference_cosines > noise
    for i in np.flatnonzero(active):
        s = {"norm": round(float(batch.norms[i]), 6), "norm_z": round(float(scores[i]), 4)}
        flagged = bool(scores[i] > z)
        out[i] = Finding(
            flagged,
            OUTLIER if flagged else None,
            f"norm {batch.norms[i]:.3g} is {scores[i]:.1f} robust deviations above the median" if flagged else "",
            s,
            provisional=flagged and bool(aligned[i]),
        )
    return out


def _far_below(values: np.ndarray, active: np.ndarray, relative: float, z: float) -> np.ndarray:
    """Active entries far below the round's typical value: under ``relative`` x the median of the
    active values *and* more than ``z`` robust deviations (median/MAD) below it. Off when the median
    is not positive: then nothing is typical enough to fall short of."""
    center = float(np.median(values[active]))
    if relative <= 0 or center <= 0:
        return np.zeros(len(values), dtype=bool)
    return active & (values < relative * center) & _below_spread(values, active, z)


def _below_spread(values: np.ndarray, active: np.ndarray, z: float) -> np.ndarray:
    """More than ``z`` robust deviations (median/MAD, unfloored) below the active values' median."""
    return _robust_z(values, active, 1e-12) < -z


def direction_detector(
    batch: DetectionBatch,
    active: np.ndarray,
    min_cosine: float = 0.0,
    min_reference_cosine: float = 0.0,
    relative: float = 0.25,
    z: float = 3.5,
    use_reference: bool = True,
    min_updates: int = 3,
    min_spread_updates: int = 5,
    reference_needs_harm: bool = True,
) -> list[Finding]:
    """Updates pointing away from the consensus: cosine against the coordinate-wise median of the
    active updates, and (FLTrust) against the reference update trained on the owner's data.

    Flagged when
    - the cosine against the reference is below ``min_reference_cosine`` (the owner's data is
      trusted, as in FLTrust). Judging it against the round's spread instead was measured and
      rejected: at Dirichlet 0.5 it let sign-flippers through (53 % flagged on one seed, 100 % with
      the plain floor) to spare 3 of 11 honest flags at Dirichlet 0.1;
    - the cosine against the consensus is below ``min_cosine`` *and* more than ``z`` robust
      deviations (median/MAD) below the round's median: with label-skewed data honest updates
      disagree among themselves, and early in training some point away from the median of the
      others without being outliers of that spread;
    - or either cosine is far below the round's typical agreement: under ``relative`` x the median
      cosine of the active updates and more than ``z`` robust deviations below it. That catches
      updates that are merely unaligned, such as a label-flipper early in training (cos ~0.02
      against the reference while honest updates sit at 0.6-0.9), and stays quiet where the spread
      is wide. ``relative=0`` turns it off.

    The median/MAD rules need ``min_spread_updates`` active updates: with three or four, the MAD is
    one gap between two values. Below that the consensus rule is the plain ``cos < min_cosine`` and
    the relative rule is off (and below ``min_updates`` there is no consensus rule at all).

    With ``reference_needs_harm`` (the default), an update that only the reference's rules catch
    (the floor, or far below the round's typical agreement with the reference) is flagged
    *provisionally* (``Finding.provisional``): an honest shard holding one or two classes points
    away from a reference trained on all of them (cosines down to -0.12 measured at Dirichlet 0.1)
    without doing any harm, so the round flags it only if the validation set sees harm beyond its
    noise, and otherwise leaves it out unflagged. A flag the consensus rules raise (the other
    trainers, a second witness) stands."""
    out = [Finding() for _ in range(batch.k)]
    spread = active.sum() >= max(min_updates, min_spread_updates)
    everyone = np.ones(batch.k, dtype=bool)
    nobody = np.zeros(batch.k, dtype=bool)
    # per cosine: (score name, values, floor, where the floor applies, far below the typical, against what)
    rules = []
    if active.sum() >= min_updates:
        cos_med = _consensus_cosines(batch, active)
        rules.append(
            (
                "cos_median",
                cos_med,
                min_cosine,
                _below_spread(cos_med, active, z) if spread else everyone,
                _far_below(cos_med, active, relative, z) if spread else nobody,
                "the coordinate-wise median",
            )
        )
    cos_ref = batch.reference_cosines if use_reference else None
    if cos_ref is not None:
        rules.append(
            (
                "cos_reference",
                cos_ref,
                min_reference_cosine,
                everyone,
                _far_below(cos_ref, active, relative, z) if spread else nobody,
                "the owner's reference update",
            )
        )
    for i in np.flatnonzero(active):
        out[i] = _direction_finding(int(i), rules, active, reference_needs_harm)
    return out


def _direction_finding(i: int, rules: list, active: np.ndarray, reference_needs_harm: bool) -> Finding:
    """Update ``i``'s finding under the direction detector's ``rules``: provisional when only the
    reference's rules catch it (and ``reference_needs_harm``)."""
    s: dict[str, float] = {}
    reasons, reference_only = [], True
    for name, cos, floor, outside, far, against in rules:
        s[name] = round(float(cos[i]), 6)
        if cos[i] < floor and outside[i]:
            reasons.append(f"cos {cos[i]:.3f} against {against}")
            reference_only = reference_only and name == "cos_reference"
        elif far[i]:
            reasons.append(
                f"cos {cos[i]:.3f} against {against}, far below the round's typical {float(np.median(cos[active])):.3f}"
            )
            reference_only = reference_only and name == "cos_reference"
    provisional = bool(reasons) and reference_only and reference_needs_harm
    return Finding(bool(reasons), OUTLIER if reasons else None, "; ".join(reasons), s, provisional)


def krum_scores(updates: np.ndarray, f: int) -> np.ndarray:
    """Krum score of each row: the sum of squared distances to its k - f - 2 nearest others."""
    x = updates.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    k = len(x)
    m = max(1, k - f - 2)
    out = np.empty(k)
    for i in range(k):
        others = np.delete(dist[i], i)
        out[i] = np.sort(others)[:m].sum()
    return out


def krum_detector(
    batch: DetectionBatch,
    active: np.ndarray,
    f: int | None = None,
    z: float = 3.5,
    sigma_floor: float = 0.5,
    min_updates: int = 4,
) -> list[Finding]:
    """Multi-Krum scores judged robustly: flag a score far above the median (log scale), rather
    than always dropping the f worst, which would flag honest trainers in a clean round."""
    out = [Finding() for _ in range(batch.k)]
    idx = np.flatnonzero(active)
    if len(idx) < min_updates:
        return out
    f = (len(idx) - 3) // 2 if f is None else int(f)
    scores = np.log(np.maximum(krum_scores(batch.updates[idx], f), 1e-30))
    zs = _robust_z(scores, np.ones(len(idx), dtype=bool), sigma_floor)
    for pos, i in enumerate(idx):
        flagged = bool(zs[pos] > z)
        out[i] = Finding(
            flagged,
            OUTLIER if flagged else None,
            f"Krum score {zs[pos]:.1f} robust deviations above the median" if flagged else "",
            {"krum_z": round(float(zs[pos]), 4)},
        )
    return out


DETECTORS: dict[str, Detector] = {
    "copy": copy_detector,
    "split": split_detector,
    "free_rider": free_rider_detector,
    "norm": norm_detector,
    "direction": direction_detector,
    "krum": krum_detector,
}
DEFAULT_DETECTORS = ("copy", "split", "free_rider", "norm", "direction")


def get_detector(name: str) -> Detector:
    try:
        return DETECTORS[name]
    except KeyError:
        raise ConfigError(f"unknown detector {name!r}", f"known: {', '.join(DETECTORS)}") from None


@dataclass
class Verdict:
    flagged: bool = False
    reason: str | None = None
    detector: str | None = None
    detail: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    provisional: bool = False  # a flag the round still has to confirm by the validation set
    excluded: bool = False  # left out of the round's model and pay, but not an offender

    def confirm(self, evidence: str) -> None:
        """The validation set found the provisionally flagged update harmful: the flag stands."""
        self.provisional = False
        self.detail = f"{self.detail}; {evidence}"

    def exclude(self, evidence: str) -> None:
        """The validation set found no harm beyond its noise: out of the round, not an offender."""
        self.flagged, self.provisional, self.excluded = False, False, True
        self.reason = EXCLUDED
        self.detail = f"{self.detail}; {evidence}"


def run_detectors(
    batch: DetectionBatch, names: Sequence[str] = DEFAULT_DETECTORS, params: dict[str, dict] | None = None
) -> list[Verdict]:
    """Run the named detectors in order; each sees only what earlier ones left unflagged."""
    params = params or {}
    verdicts = [Verdict() for _ in range(batch.k)]
    active = np.ones(batch.k, dtype=bool)
    for name in names:
        detector = get_detector(name)
        findings = detector(batch, active.copy(), **params.get(name, {}))
        for i, finding in enumerate(findings):
            verdicts[i].scores.update(finding.scores)
            if finding.flagged and active[i]:
                active[i] = False
                verdicts[i].flagged, verdicts[i].reason = True, finding.reason
                verdicts[i].detector, verdicts[i].detail = name, finding.detail
                verdicts[i].provisional = finding.provisional
    return verdicts
