"""Committee members the demo can run: a dishonest member's behaviour, applied to its post before commit.

The aggregator node accepts a ``behaviour`` hook, ``MemberPost -> MemberPost``, that rewrites the post
it computed before committing it (identity for an honest member). The dishonest member here is the
attack a committee exists to stop: an owner's or a cartel's scorer that flags every honest trainer and
routes the whole round to one trainer the attacker controls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from backend.chain.types import WEIGHT_SCALE
from backend.errors import ConfigError

HONEST = "honest"
DISHONEST = "dishonest"


class DishonestMember:
    """Flags every honest trainer and gives all weight to ``favoured``, the attacker's own trainer.

    ``submitters()`` gives the addresses of the round being posted, in submitter order (the order of
    the post's weights); ``role_of`` is the simulation's ground truth, address -> role. The post keeps
    the honest member's model and report CIDs: the liar's aim is the pay, and a lying model CID only
    loses the majority vote on the model."""

    def __init__(self, favoured: str, role_of: dict[str, str], submitters: Callable[[], Sequence[str]]):
        if role_of.get(favoured, HONEST) == HONEST:
            raise ConfigError(f"the dishonest member's trainer {favoured} must be attacker-controlled, not honest")
        self.favoured = favoured
        self.role_of = role_of
        self.submitters = submitters

    def __call__(self, post):
        order = list(self.submitters())
        if len(order) != len(post.weights):
            raise ValueError(f"the post has {len(post.weights)} weights for {len(order)} submitters")
        weights = [WEIGHT_SCALE if addr == self.favoured else 0 for addr in order]
        flags = post.flags
        for i, addr in enumerate(order):
            if self.role_of.get(addr) == HONEST:
                flags |= 1 << i
            elif addr == self.favoured:
                flags &= ~(1 << i)
        # if the favoured trainer did not submit this round every weight is 0: the round pays nobody
        return dataclasses.replace(post, weights=weights, flags=flags)


def favoured_trainer(roles: Sequence[str], addresses: Sequence[str]) -> str:
    """The trainer a dishonest member pays: the first attacker-controlled one."""
    for role, addr in zip(roles, addresses):
        if role != HONEST:
            return addr
    raise ConfigError(
        "--dishonest-aggregators needs a trainer the attacker controls, to route the pay to",
        "give at least one attacker with --attackers (e.g. --attackers free_rider:1)",
    )


def member_roles(k: int, dishonest: int) -> list[str]:
    """Ground truth of the k members, in registration order: the dishonest ones last."""
    return [HONEST] * (k - dishonest) + [DISHONEST] * dishonest
