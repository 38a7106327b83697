"""One phase of one million objects: what share of the arena's mapped bytes
does the scope give back at exit, and what stays retained?

    python examples/release_share.py
"""
import sys

import objarena


class Record:
    __slots__ = ("key", "value", "tags")

    def __init__(self, key, value, tags):
        self.key, self.value, self.tags = key, value, tags


def phase(n):
    # n objects in all: Records, their key strings, floats and tag tuples
    records = [Record(f"k{i}", i * 0.5, (i, i + 1)) for i in range(n // 4)]
    index = {r.key: r for r in records}
    return sum(r.value for r in index.values())


def main():
    phase(1000)  # warm lazily created interpreter state outside the scope
    with objarena.scope() as s:
        phase(1_000_000)
    st = s.stats
    mapped = st["bytes_released"] + st["bytes_retained"]
    share = st["bytes_released"] / mapped if mapped else 1.0
    print(f"Python {sys.version.split()[0]}: {st['blocks_allocated']:,} blocks, peak {st['peak_mapped'] / 2**20:.0f} MiB; "
          f"released {st['chunks_released']} chunks ({share:.2%} of mapped bytes), "
          f"retained {st['chunks_retained']} chunk(s) holding {st['live_blocks_at_exit']} live block(s)")


if __name__ == "__main__":
    main()
