"""The one split of learners into train / dev / test: a pure function of the learner id and a seed,
so a learner has the same role in every unit, every night, in the training job and in the benches.

train (80 %): models are fitted on them. dev (10 %): every setting is chosen on them (the job's grid
and Platt calibration, a bench's windows and constants). test (10 %): never used to choose anything
and held out of every stored model, so figures on them are honest, whichever models are compared.

A learner's key is sha256(f"{seed}:{user_id}") read as a number in [0, 1): below 0.8 train, below
0.9 dev, else test. Within a role, the key also orders learners, so a cap ("at most n test
learners") keeps the same learners wherever it is applied. Pure Python and numpy.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

SEED = 0
DEV_FRACTION = 0.1
TEST_FRACTION = 0.1
TRAIN, DEV, TEST = 0, 1, 2
ROLE_NAMES = ("train", "dev", "test")
_BOUNDS = (1.0 - DEV_FRACTION - TEST_FRACTION, 1.0 - TEST_FRACTION)   # train below the first, dev below the second


def split_key(user_id: str, seed: int = SEED) -> float:
    """The learner's place in [0, 1): the top 53 bits of sha256(f"{seed}:{user_id}") (exact in a float)."""
    digest = hashlib.sha256(f"{seed}:{user_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def split_keys(user_ids: Iterable[str], seed: int = SEED) -> np.ndarray:
    """(n,) float64 keys of `user_ids`, in their order."""
    return np.array([split_key(str(u), seed) for u in user_ids], dtype=np.float64)


def roles_of_keys(keys: np.ndarray) -> np.ndarray:
    """(n,) int8 role codes (TRAIN, DEV, TEST) of split keys."""
    return np.searchsorted(np.array(_BOUNDS), np.asarray(keys, dtype=np.float64), side="right").astype(np.int8)


def roles(user_ids: Iterable[str], seed: int = SEED) -> np.ndarray:
    """(n,) int8 role codes (TRAIN, DEV, TEST) of `user_ids`, in their order."""
    return roles_of_keys(split_keys(user_ids, seed))


def role(user_id: str, seed: int = SEED) -> str:
    """"train", "dev" or "test"."""
    return ROLE_NAMES[int(roles_of_keys(np.array([split_key(str(user_id), seed)]))[0])]


def ids_by_role(user_ids: Iterable[str], seed: int = SEED) -> dict[str, list[str]]:
    """{"train": [...], "dev": [...], "test": [...]}: the unique ids of each role, in key order."""
    unique = sorted({str(u) for u in user_ids})
    keys = split_keys(unique, seed)
    codes = roles_of_keys(keys)
    order = np.argsort(keys, kind="stable")
    return {name: [unique[i] for i in order if codes[i] == code] for code, name in enumerate(ROLE_NAMES)}


def first_by_key(indices: np.ndarray, keys: np.ndarray, limit: int | None) -> np.ndarray:
    """The (at most `limit`) members of `indices` with the smallest keys, sorted by index: a cap
    that keeps the same learners in every unit (keys: (n,) for all learners, indexed by `indices`)."""
    indices = np.asarray(indices, dtype=np.int64)
    if limit is not None and len(indices) > limit:
        indices = indices[np.argsort(keys[indices], kind="stable")[:limit]]
    return np.sort(indices)
