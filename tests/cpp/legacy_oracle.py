"""CPython's own json and hashlib as the oracle for the legacy scheme.

Prints one line per generated document: the raw JSON text (hex-encoded, since it may hold any
byte) and the digest the production service's algorithm gives for it. Seeded and reproducible.
The generator covers nesting, unicode (astral, combining marks, controls, DEL, U+2028), big and
small ints, floats across every exponent range, nulls at every level, excluded fields and
duplicate keys. Usage: legacy_oracle.py COUNT SEED
"""
import hashlib
import json
import random
import sys

EXCLUDE = {'zoho_synced_at', 'created_at', 'updated_at', 'last_sync_attempt', 'sync_count',
           'cached_at', 'zoho_raw_data'}


def legacy_digest(data):
    normalized = {}
    for key, value in sorted(data.items()):
        if key not in EXCLUDE:
            if value is not None:
                normalized[key] = value
    content = json.dumps(normalized, sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()


ALPHABET = (list("abcXYZ019 _-~\"\\/") + ["\n", "\t", "\x00", "\x01", "\x1f", "\x7f", "\u0080",
            "é", "\u0301", "\u2028", "\u2029", "ز", "ي", "ت", "\uffff", "\ufeff", "😀", "\U0010ffff",
            "\ud7ff", "\ue000", "\ud800", "\udc00"])


def rand_string(rng, n=None):
    n = rng.randint(0, 12) if n is None else n
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def rand_float(rng):
    choice = rng.randint(0, 5)
    if choice == 0:
        return rng.uniform(-1e6, 1e6)
    if choice == 1:
        return float(rng.randint(-10**6, 10**6))
    if choice == 2:
        return rng.choice([0.0, -0.0, 1e-5, 1e-4, 1e16, 1e15, 5e-324, 1.7976931348623157e308, 0.1, 2.5])
    mantissa = rng.uniform(1, 10) * rng.choice([1, -1])
    return mantissa * 10.0 ** rng.randint(-320, 300)


def rand_int(rng):
    return rng.choice([rng.randint(-100, 100), rng.randint(-2**63, 2**64), 2646610000000000000 + rng.randint(0, 10**6),
                       rng.randint(-10**40, 10**40), 0])


def rand_value(rng, depth):
    kinds = ["str", "int", "float", "bool", "null"] + (["list", "dict"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return rand_string(rng)
    if kind == "int":
        return rand_int(rng)
    if kind == "float":
        return rand_float(rng)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rand_string(rng, rng.randint(0, 5)): rand_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def render(value, rng):
    """JSON text with random whitespace, random \\u escapes and a float spelled several ways."""
    ws = lambda: rng.choice(["", "", " ", "\n  ", "\t"])
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        parts = [ws() + render_str(k, rng) + ws() + ":" + ws() + render(v, rng) for k, v in items]
        return "{" + ",".join(parts) + ws() + "}"
    if isinstance(value, list):
        return "[" + ",".join(ws() + render(v, rng) for v in value) + ws() + "]"
    if isinstance(value, str):
        return render_str(value, rng)
    if isinstance(value, float):
        text = repr(value)
        if rng.random() < 0.3 and "e" not in text and "." in text:
            mant, frac = text.split(".")
            text = f"{mant}{frac}e-{len(frac)}" if not mant.startswith("-0") and mant != "0" else text
        return text
    return json.dumps(value)


def render_str(s, rng):
    has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in s)
    if rng.random() < 0.5 and not has_surrogate:
        return json.dumps(s, ensure_ascii=False)
    return json.dumps(s, ensure_ascii=True)


def document(rng):
    doc = {}
    for _ in range(rng.randint(0, 8)):
        doc[rand_string(rng, rng.randint(1, 6))] = rand_value(rng, 0)
    if rng.random() < 0.3:
        doc[rng.choice(sorted(EXCLUDE))] = rand_value(rng, 1)
    if rng.random() < 0.3:
        doc["top_null"] = None
    text = render(doc, rng)
    if rng.random() < 0.2:
        # A duplicate key: json.loads keeps the last one.
        dup = json.dumps("dup")
        text = "{" + dup + ":1," + dup + ":" + render(rand_value(rng, 1), rng) + ("," + text[1:] if doc else "}")
    return text


def main():
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    out = sys.stdout
    for _ in range(count):
        text = document(rng)
        raw = text.encode("utf-8", "surrogatepass")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # a raw lone surrogate: not valid UTF-8, skipped (documented deviation)
        out.write(raw.hex() + " " + legacy_digest(json.loads(text)) + "\n")


if __name__ == "__main__":
    main()
