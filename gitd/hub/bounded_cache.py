"""A thread-safe LRU cache bounded by the total weight of what it holds, not by its number of items.

The Hub API caches listings and cards per commit. Counting items would let a few huge
ones (a tree of a million paths, a big card) hold gigabytes: here each item weighs what
it costs (entries in a listing, bytes of a card) and the least recently used items go
once the total passes ``max_weight``. An item heavier than a quarter of that is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedCache(Generic[V]):
    def __init__(self, max_weight: int, *, max_items: int = 4096):
        self.max_weight = max_weight
        self.max_items = max_items
        self.weight = 0
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, value: V, weight: int) -> None:
        weight = max(1, weight)
        if weight > self.max_weight // 4:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self._items[key] = (value, weight)
            self.weight += weight
            while self.weight > self.max_weight or len(self._items) > self.max_items:
                _, (_, dropped) = self._items.popitem(last=False)
                self.weight -= dropped
