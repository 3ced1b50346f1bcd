"""The fast paths of the Python object walker (python/src/object_canonical.cpp), each pinned to an
independent oracle: CPython's json.dumps for the legacy scheme, the JSON-bytes walker (src/) for
RFC 8785. Named cases sit on every boundary a fast path introduces (8-byte ASCII scan words, the
insertion-sort limit, str kinds, int64), and random inputs cover the rest."""

from __future__ import annotations

import enum
import itertools
import json
import random
import threading
import time
import uuid
from typing import Any

import pytest

import tdscache
from legacy_reference import legacy_hash

LEGACY = tdscache.Hasher("legacy")
JCS = tdscache.Hasher("jcs")

# One of each thing a string fast path treats apart: the escapes both schemes share, other
# controls, DEL (escaped by legacy only), Latin-1, BMP, the U+E000.. range, astral, lone surrogates.
SPECIALS = ['"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "\x80", "é", "ÿ",
            "ع", "\u2028", "\ue000", "\uffff", "😀", "\U0010ffff", "\ud800", "\udfff"]


def legacy_expected(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, default=str).encode()


def jcs_expected(value: Any) -> bytes:
    """The bytes walker in src/ (RFC 8785) applied to CPython's own JSON text of the value."""
    return JCS.canonical(json.dumps(value, ensure_ascii=False).encode())


def strings_around_word_boundaries() -> list[str]:
    """Every special at every position of ASCII fillers 0..19 long: each side of the 8-byte words
    the ASCII scan reads, and the tail the byte loop finishes."""
    out = []
    for length in range(20):
        filler = "".join(chr(0x41 + (i % 26)) for i in range(length))
        out.append(filler)
        for special in SPECIALS:
            for pos in range(length + 1):
                out.append(filler[:pos] + special + filler[pos:])
    return out


def random_string(rng: random.Random) -> str:
    pools = [(0x20, 0x7E), (0x00, 0x1F), (0x7F, 0xFF), (0x100, 0x7FF), (0x800, 0xD7FF),
             (0xD800, 0xDFFF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    chars = []
    for _ in range(rng.randint(0, 40)):
        lo, hi = pools[0] if rng.random() < 0.6 else rng.choice(pools)
        chars.append(chr(rng.randint(lo, hi)))
    return "".join(chars)


def test_legacy_strings_at_every_scan_word_boundary_match_json_dumps() -> None:
    for s in strings_around_word_boundaries():
        assert LEGACY.canonical({"k": s}) == legacy_expected({"k": s}), repr(s)
        assert LEGACY.canonical({s: 1, "z": [s]}) == legacy_expected({s: 1, "z": [s]}), repr(s)


def test_jcs_strings_at_every_scan_word_boundary_match_the_bytes_walker() -> None:
    for s in strings_around_word_boundaries():
        if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
            continue
        assert JCS.canonical({"k": s, s: [s]}) == jcs_expected({"k": s, s: [s]}), repr(s)


def test_jcs_keeps_del_raw_and_legacy_escapes_it() -> None:
    assert JCS.canonical(["a\x7fb"]) == b'["a\x7fb"]'
    assert LEGACY.canonical(["a\x7fb"]) == b'["a\\u007fb"]'


@pytest.mark.parametrize("where", ["value", "key"])
@pytest.mark.parametrize("text", ["\ud800", "abc\udfffdef", "é\ud83d", "😀\udc00"])
def test_jcs_refuses_lone_surrogates_in_every_str_kind(where: str, text: str) -> None:
    data = {"k": text} if where == "value" else {text: 1}
    with pytest.raises(tdscache.InputError) as raised:
        JCS.canonical(data)
    assert raised.value.status_name == "lone_surrogate"
    assert LEGACY.canonical(data) == legacy_expected(data)


def test_random_strings_match_both_oracles() -> None:
    rng = random.Random(6)
    for _ in range(6000):
        s = random_string(rng)
        data = {"v": s, s: rng.randint(0, 9), "list": [s, s[:3]]}
        assert LEGACY.canonical(data) == legacy_expected(data), repr(s)
        if not any(0xD800 <= ord(c) <= 0xDFFF for c in s):
            assert JCS.canonical(data) == jcs_expected(data), repr(s)


class Color(enum.IntEnum):
    RED = 1


class Big(int):
    def __str__(self) -> str:
        return "not used by json"


class Ratio(float):
    def __repr__(self) -> str:
        return "not used by json"


INTS = [0, 1, -1, 9, 10, 2**31, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1,
        2**64, -(2**64), 10**30, -(10**30), Color.RED, Big(2**63 + 5), Big(-3)]


def test_ints_on_both_sides_of_int64_and_subclasses_match_json_dumps() -> None:
    for i in INTS:
        data = {"i": i, "nested": [i, {"i": i}]}
        assert LEGACY.canonical(data) == legacy_expected(data), i
        assert JCS.canonical({"i": int(i)}) == jcs_expected({"i": int(i)}), i


def test_bool_is_not_an_int_and_floats_use_float_repr() -> None:
    data = {"t": True, "f": False, "n": [None, True], "r": Ratio(0.1), "x": [1e16, 1e-5, -0.0, 5e-324, 1.5e300]}
    assert LEGACY.canonical(data) == legacy_expected(data)


class Shouty(str):
    def __str__(self) -> str:
        return "SHOUT"


class Bag(dict):  # type: ignore[type-arg]
    pass


class Row(list):  # type: ignore[type-arg]
    pass


def test_subclasses_of_str_dict_and_list_follow_json_dumps() -> None:
    data = {"s": Shouty("quiet"), Shouty("key"): 1, "d": Bag(b=1, a=2), "l": Row([3, Shouty("x")]), "t": (1, 2)}
    assert LEGACY.canonical(data) == legacy_expected(data)
    assert legacy_hash(data) == LEGACY.hexdigest(data)


@pytest.mark.parametrize("count", [0, 1, 2, 31, 32, 33, 64, 200])
def test_key_order_on_both_sides_of_the_insertion_sort_limit(count: int) -> None:
    rng = random.Random(count)
    keys = [random_string(rng) or "e" for _ in range(count)] + ["a", "ab", "abc", "b", "é", "😀", "\ue000", "ｚ"]
    rng.shuffle(keys)
    data = {k: i for i, k in enumerate(keys)}
    assert LEGACY.canonical(data) == legacy_expected(data)
    valid = {k: v for k, v in data.items() if not any(0xD800 <= ord(c) <= 0xDFFF for c in k)}
    assert JCS.canonical(valid) == jcs_expected(valid)


def test_jcs_sorts_astral_keys_before_the_private_use_area_like_utf16() -> None:
    assert JCS.canonical({"\ue000": 1, "😀": 2}) == '{"😀":2,"\ue000":1}'.encode()
    assert LEGACY.canonical({"\ue000": 1, "😀": 2}) == legacy_expected({"\ue000": 1, "😀": 2})


def test_top_level_exclusions_match_by_exact_name_only() -> None:
    data = {"created_at": 1, "created_a": 2, "created_att": 3, "sync_count": 4, "sync_counts": 5,
            "nested": {"created_at": 6}}
    assert LEGACY.canonical(data) == b'{"created_a": 2, "created_att": 3, "nested": {"created_at": 6}, "sync_counts": 5}'
    assert LEGACY.hexdigest(data) == legacy_hash(data)


class Reentrant:
    """str() hashes another dict with the same hasher, on the same thread, mid-walk."""

    def __str__(self) -> str:
        return LEGACY.hexdigest({"inner": {"b": 1, "a": [1, 2, {"z": 0, "y": 1}]}})


def test_a_str_that_hashes_on_the_same_thread_does_not_disturb_the_outer_walk() -> None:
    data = {"z": {"k2": 1, "k1": Reentrant(), "k0": [1, {"b": 2, "a": 1}]}, "a": {"y": 2, "x": 1}}
    assert LEGACY.canonical(data) == legacy_expected(data)


class Yielding:
    """A value whose str() runs Python code that hands the GIL to other threads."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __str__(self) -> str:
        time.sleep(0)
        return f"yield-{self.n}"


def test_threads_sharing_a_hasher_while_str_yields_the_gil_get_exact_digests() -> None:
    hasher = tdscache.Hasher()
    failures: list[Any] = []

    def run(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(300):
            data = {f"k{j}": {"v": Yielding(i), "u": uuid.UUID(int=rng.getrandbits(128)), f"n{j}": j}
                    for j in range(rng.randint(1, 12))}
            if hasher.hexdigest(data) != legacy_hash(data):
                failures.append(data)
            batch = [data, {"w": Yielding(-i)}]
            if hasher.digest_many(batch) != [bytes.fromhex(legacy_hash(d)) for d in batch]:
                failures.append(batch)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:2]



# A value whose str() empties the container holding it. Hashing such data must not crash; what
# it hashes to is unspecified. Run in a child under PYTHONMALLOC=debug, which overwrites freed
# memory, so a walk that kept a borrowed reference to a removed member crashes there reliably
# instead of reading memory that merely happens to be intact.
_MUTATION_SCRIPT = """
import tdscache

class Mutator:
    def __init__(self, container):
        self.container = container
    def __str__(self):
        if isinstance(self.container, dict):
            self.container.clear()
        else:
            del self.container[:]
        return "mutated"

hasher = tdscache.Hasher()
for _ in range(50):
    data = {}
    data["a_first"] = Mutator(data)
    data["b_value"] = ["x" * 50, {"deep": "y" * 40}]
    data["c_value"] = "z" * 100
    assert len(hasher.digest(data)) == 32
    items = []
    items.append(Mutator(items))
    items.extend(["x" * 60, {"k": "v" * 30}, [1, 2, 3]])
    assert len(hasher.digest({"items": items})) == 32
print("ok")
"""


def test_containers_emptied_by_a_member_str_during_the_walk() -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONMALLOC="debug")
    done = subprocess.run([sys.executable, "-c", _MUTATION_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_digest_many_reentered_from_a_str_keeps_each_calls_digests() -> None:
    hasher = tdscache.Hasher()

    class Reenters:
        def __str__(self) -> str:
            inner = hasher.digest_many([{"inner": "x" * 300, "n": i} for i in range(20)])
            return inner[0].hex()[:12]

    batch = [{"item_id": i, "name": "n" * 200, "odd": Reenters(), "tail": "t" * 100} for i in range(50)]
    expected = [bytes.fromhex(legacy_hash(d)) for d in batch]
    assert hasher.digest_many(batch) == expected


def test_digest_reentered_from_a_str_keeps_each_calls_digest() -> None:
    hasher = tdscache.Hasher()

    class Reenters:
        def __str__(self) -> str:
            return hasher.digest({"inner": "y" * 500}).hex()[:10]

    for i in range(20):
        data = {"item_id": i, "name": "n" * 300, "odd": Reenters(), "tail": "t" * 100}
        assert hasher.digest(data) == bytes.fromhex(legacy_hash(data))


# ---- dict shapes: a dict's sorted names and their text, kept per thread and reused ---------------
# A shape is built the second time a dict's key objects miss, and used from the third, so each
# case below hashes the same data at least three times.

def _three_times(hasher: tdscache.Hasher, data: Any) -> bytes:
    first = hasher.canonical(data)
    assert hasher.canonical(data) == first and hasher.canonical(data) == first
    return first


def test_shapes_are_checked_by_name_not_only_by_key_addresses() -> None:
    # Keys built afresh each round and dropped after it: CPython gives their addresses to the next
    # round's keys, which have other names of the same lengths in the same places. (The names are
    # long so that the short strings made on the way sit in another allocator size class.)
    tail = "_" * 40
    previous: tuple[int, ...] = ()
    reused = 0
    for round_ in range(200):
        digit = "0123456789"[round_ % 10]
        keys = [c + digit + tail for c in "hgfedcba"]
        data = {k: i for i, k in enumerate(keys)}
        assert _three_times(LEGACY, data) == legacy_expected(data)
        assert _three_times(JCS, data) == jcs_expected(data)
        addresses = tuple(id(k) for k in keys)
        reused += addresses == previous
        previous = addresses
        del data  # then the list frees its keys last to first, so the next round's take the same places
        del keys
    assert reused > 100, "the case needs keys at reused addresses"


def test_one_set_of_names_in_every_insertion_order() -> None:
    names = ["b", "a", "created_at", "d", "c"]
    for order in itertools.permutations(names):
        data = {k: (None if k == "d" else i) for i, k in enumerate(order)}
        _three_times(LEGACY, data)
        assert LEGACY.hexdigest(data) == legacy_hash(data)
        assert _three_times(JCS, data) == jcs_expected(data)


def test_the_same_names_at_the_top_and_nested_are_two_shapes() -> None:
    # At the top, legacy leaves out excluded names and None values; nested, it keeps both.
    for i in range(6):
        entity = {"created_at": i, "notes": None if i % 2 else "n", "name": "x"}
        same_names = {"created_at": i, "notes": None, "name": "x"}
        for data in (entity, {"wrap": same_names}, entity, {"wrap": entity}):
            _three_times(LEGACY, data)
            assert LEGACY.hexdigest(data) == legacy_hash(data)


def test_hashers_with_other_options_on_one_thread_keep_their_own_shapes() -> None:
    plain = tdscache.Hasher("legacy")
    no_name = tdscache.Hasher("legacy", exclude_fields=["name"])
    no_child_name = tdscache.Hasher("legacy", exclude_pointers=["/child/name"])
    data = {"name": "x", "created_at": 1, "child": {"name": "y", "k": 2}, "none": None}
    for _ in range(4):
        assert plain.hexdigest(data) == legacy_hash(data)
        assert no_name.canonical(data) == b'{"child": {"k": 2, "name": "y"}, "created_at": 1}'
        assert no_child_name.canonical(data) == b'{"child": {"k": 2}, "name": "x"}'
        assert JCS.canonical(data) == jcs_expected(data)


def test_names_that_need_escaping_are_kept_escaped() -> None:
    data = {'q"uote': 1, "back\\slash": 2, "ctl\x01": 3, "del\x7f": 4, "tab\t": {"nl\n": 5}, "plain": 6}
    assert _three_times(LEGACY, data) == legacy_expected(data)
    assert _three_times(JCS, data) == jcs_expected(data)
