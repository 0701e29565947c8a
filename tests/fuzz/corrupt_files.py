#!/usr/bin/env python3
"""Corrupted files through the real `monge` binary (issue 19; docs/security.md).

Takes a valid map file and valid images (PNG, JPEG, TIFF, made here by monge itself), writes
COUNT corrupted variants of each (seeded, reproducible: bit flips, truncations, byte-range
overwrites, huge declared sizes, spliced ranges) and runs

    monge info VARIANT_MAP                      monge apply VARIANT_MAP GOOD.png OUT.png
    monge apply MAP VARIANT_IMAGE OUT.png

each with a timeout. It asserts, for every run:
  - no crash: the exit code is 0, 1 (bad input) or 3 (a plugin the file names is not installed),
    never a signal or >= 128, nor any other code;
  - no hang: the run ends within --timeout seconds;
  - no partial output: a failed run leaves no output file and no `.NAME.monge-*` temporary; a
    successful apply writes a PNG that decodes completely (chunks, CRCs, zlib stream, row count).

    corrupt_files.py --monge build/bin/monge --map MAP --work DIR [--count 500] [--seed 1]

`monge apply` runs with --max-pixels 2^24 (--max-pixels below): a variant whose header claims up to
the default cap of 2^30 pixels is a valid request for minutes of work (decoded in full before a JPEG whose
entropy data ends early is refused), which security.huge_images covers; here a run must end
within the timeout.

A failing variant is copied to DIR/failures/ with its command and output; keep it as a
regression case (tests/fuzz/corpus/image/ or corpus/map/) with the fix. Exit code 0: no failure.
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib


# ---------------------------------------------------------------------------------------------
# Mutations. Each takes the original bytes and a random.Random and returns (name, new bytes).

def bit_flips(data, rng):
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 16])):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return "bitflip", bytes(b)


def truncate(data, rng):
    cut = rng.choice([rng.randrange(len(data)), rng.randrange(min(len(data), 256)), len(data) - rng.randrange(1, 64)])
    return "truncate", data[:max(0, cut)]


def overwrite(data, rng):
    b = bytearray(data)
    start = rng.randrange(len(b))
    length = min(len(b) - start, rng.choice([1, 4, 16, 64, 512]))
    fill = rng.choice(["zero", "ff", "random"])
    for i in range(start, start + length):
        b[i] = 0 if fill == "zero" else 0xFF if fill == "ff" else rng.randrange(256)
    return "overwrite-" + fill, bytes(b)


def splice(data, rng):
    a, c = sorted(rng.randrange(len(data)) for _ in range(2))
    at = rng.randrange(len(data))
    piece = data[a:c][:4096]
    return "splice", (data[:at] + piece + data[at:]) if rng.random() < 0.5 else (data[:a] + data[c:])


HUGE = [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x10000, 65535, 1 << 20, 0xFFFFFFFFFFFFFFFF, 1 << 62, 0]


def huge_generic(data, rng):
    """A big value written over a 4- or 8-byte field near the start, where sizes are declared."""
    b = bytearray(data)
    width = rng.choice([4, 8])
    at = rng.randrange(0, max(1, min(len(b) - width, 256)))
    value = rng.choice(HUGE) & ((1 << (8 * width)) - 1)
    order = rng.choice(["<", ">"])
    b[at:at + width] = struct.pack(order + ("I" if width == 4 else "Q"), value)
    return "huge-field", bytes(b)


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def huge_png(data, rng):
    """IHDR width and height set large, with a correct CRC, so the header is believed."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return huge_generic(data, rng)
    w, h = struct.unpack(">II", data[16:24])
    w2 = rng.choice([w, 1 << 16, 0x7FFFFFFF, 100000, 1 << 31])
    h2 = rng.choice([h, 1 << 16, 0x7FFFFFFF, 100000, 1])
    ihdr = struct.pack(">II", w2, h2) + data[24:29]
    return "huge-png", data[:8] + png_chunk(b"IHDR", ihdr) + data[33:]


def huge_jpeg(data, rng):
    """The SOF frame's height and width set large."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            break
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            b = bytearray(data)
            b[i + 5:i + 9] = struct.pack(">HH", rng.choice([0xFFFF, 0x8000, 0]), rng.choice([0xFFFF, 0x4000, 1]))
            return "huge-jpeg", bytes(b)
        i += 2 + length
    return huge_generic(data, rng)


def huge_tiff(data, rng):
    """ImageWidth / ImageLength / RowsPerStrip / StripByteCounts of the first IFD set large."""
    if data[:2] not in (b"II", b"MM"):
        return huge_generic(data, rng)
    e = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(e + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return huge_generic(data, rng)
    n = struct.unpack(e + "H", data[ifd:ifd + 2])[0]
    b = bytearray(data)
    targets = [256, 257, 278, 279, 277, 258]
    for k in range(n):
        at = ifd + 2 + 12 * k
        if at + 12 > len(b):
            break
        tag, typ = struct.unpack(e + "HH", b[at:at + 4])
        if tag in targets and rng.random() < 0.6:
            value = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 1 << 20, 65535, 0])
            if typ == 3:
                b[at + 8:at + 10] = struct.pack(e + "H", value & 0xFFFF)
            elif typ == 4:
                b[at + 8:at + 12] = struct.pack(e + "I", value)
    return "huge-tiff", bytes(b)


def huge_map(data, rng):
    """The MONGEMAP header or data length, or a shape or offset in the JSON header, set large."""
    if data[:8] != b"MONGEMAP":
        return huge_generic(data, rng)
    b = bytearray(data)
    if rng.random() < 0.5:
        at = rng.choice([8, 16, 24])
        b[at:at + 8] = struct.pack("<Q", rng.choice(HUGE))
        return "huge-map-prefix", bytes(b)
    header_len = struct.unpack("<Q", data[16:24])[0]
    text = data[40:40 + header_len]
    for key in (b'"shape":[', b'"offset":'):
        spots = [i for i in range(len(text)) if text.startswith(key, i)]
        if spots:
            i = rng.choice(spots) + len(key)
            j = i
            while j < len(text) and text[j:j + 1].isdigit():
                j += 1
            big = str(rng.choice([2**31, 2**40, 2**63 - 1, 2**64 - 1, 10**30])).encode()
            text = text[:i] + big + text[j:]
            # The checksum and lengths are made to match, so the reader gets past them.
            return "huge-map-json", rewrap_map(data, text)
    return huge_generic(data, rng)


def map_checksum(payload_header, payload_data):
    # host/map/tensor_file.cpp checksum(), chained over the header then the data.
    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)

    def checksum(p, seed):
        h = mix(seed ^ 0x6D6F6E67654D4150) ^ len(p)
        lanes = [h, h ^ 0x9E3779B97F4A7C15, h ^ 0xC2B2AE3D27D4EB4F, h ^ 0x165667B19E3779F9]
        i = 0
        while i + 32 <= len(p):
            for k in range(4):
                w = int.from_bytes(p[i + 8 * k:i + 8 * k + 8], "little")
                lanes[k] = ((lanes[k] ^ w) * 0x9FB21C651E98DF25) & M
                lanes[k] ^= lanes[k] >> 29
            i += 32
        for k in range(4):
            h = mix(h ^ lanes[k])
        while i < len(p):
            h = ((h ^ p[i]) * 0x100000001B3) & M
            i += 1
        return mix(h)

    M = (1 << 64) - 1
    return checksum(payload_data, checksum(payload_header, 0))


def rewrap_map(data, new_header):
    old_len = struct.unpack("<Q", data[16:24])[0]
    data_len = struct.unpack("<Q", data[24:32])[0]
    body = data[len(data) - data_len:]
    start = (40 + len(new_header) + 63) // 64 * 64
    out = bytearray(data[:8]) + data[8:16] + struct.pack("<QQQ", len(new_header), data_len, 0)
    out += new_header + b"\0" * (start - 40 - len(new_header)) + body
    out[32:40] = struct.pack("<Q", map_checksum(bytes(new_header), bytes(body)))
    assert old_len >= 0
    return bytes(out)


def json_edit_map(data, rng):
    """A mutation of the JSON header with the checksum made to match: gets past the integrity check."""
    if data[:8] != b"MONGEMAP":
        return huge_generic(data, rng)
    header_len = struct.unpack("<Q", data[16:24])[0]
    text = bytearray(data[40:40 + header_len])
    for _ in range(rng.choice([1, 1, 2, 3])):
        i = rng.randrange(len(text))
        choice = rng.random()
        if choice < 0.4:
            text[i] = rng.choice(b'0123456789-.eE"{}[],:ntfx\\')
        elif choice < 0.7:
            del text[i:i + rng.randrange(1, 8)]
        else:
            text[i:i] = rng.choice([b"9", b"-1", b"1e308", b"null", b'"x"', b"[]", b"{}", b"0.5"])
    return "json-edit", rewrap_map(data, bytes(text))


def mutations_for(kind):
    common = [bit_flips, truncate, overwrite, splice, huge_generic]
    special = {"map": [huge_map, json_edit_map, json_edit_map], "png": [huge_png], "jpeg": [huge_jpeg],
               "tiff": [huge_tiff]}[kind]
    return common + special * 2


# ---------------------------------------------------------------------------------------------
# Checks.

def png_ok(path):
    """True when `path` is a PNG that decodes completely: signature, chunk CRCs, IEND last, and a
    zlib stream of exactly height rows of the declared width."""
    try:
        data = open(path, "rb").read()
    except OSError:
        return False
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    i, idat, ihdr, ended = 8, b"", None, False
    while i + 12 <= len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        kind = data[i + 4:i + 8]
        payload = data[i + 8:i + 8 + n]
        if len(payload) != n or struct.unpack(">I", data[i + 8 + n:i + 12 + n])[0] != zlib.crc32(kind + payload) & 0xFFFFFFFF:
            return False
        if kind == b"IHDR":
            ihdr = payload
        elif kind == b"IDAT":
            idat += payload
        elif kind == b"IEND":
            ended = i + 12 + n == len(data)
            break
        i += 12 + n
    if not ended or ihdr is None:
        return False
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
    if channels is None or interlace != 0:
        return interlace == 1  # not checked further
    try:
        raw = zlib.decompress(idat)
    except zlib.error:
        return False
    return len(raw) == h * (1 + (w * channels * depth + 7) // 8)


def temporaries(folder):
    return [n for n in os.listdir(folder) if n.startswith(".") and ".monge-" in n]


class Runner:
    def __init__(self, monge, timeout):
        self.monge, self.timeout = monge, timeout

    def run(self, args, cwd):
        env = dict(os.environ, MONGE_PLUGIN_PATH="")
        start = time.time()
        p = subprocess.Popen([self.monge] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=self.timeout)
            return p.returncode, out.decode("utf-8", "replace"), time.time() - start, False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            return None, out.decode("utf-8", "replace"), time.time() - start, True


def check_run(runner, args, out_file, folder):
    """Runs one command; returns (outcome, problem or None, log)."""
    rc, log, seconds, hung = runner.run(args, folder)
    if hung:
        return "hang", "no end within %d s" % runner.timeout, log
    if rc < 0 or rc >= 128:
        return "crash", "exit code %d (signal %d)" % (rc, -rc if rc < 0 else rc - 128), log
    if rc not in (0, 1, 3):
        return "crash", "unexpected exit code %d" % rc, log
    left = temporaries(folder)
    if left:
        return "partial", "temporaries left: %s" % left, log
    if out_file:
        exists = os.path.exists(out_file)
        if rc != 0 and exists:
            return "partial", "failed (exit %d) but wrote %s" % (rc, out_file), log
        if rc == 0 and not png_ok(out_file):
            return "partial", "succeeded but %s is not a complete PNG" % out_file, log
    return ("ok" if rc == 0 else "refused"), None, log


def make_inputs(monge, work):
    """Valid images made by monge itself: RGB PNG and JPEG, 16-bit TIFF, and a grey PNG."""
    script = (
        "local m = require 'monge'\n"
        "local x = m.rand({3, 40, 48}, {seed = 7}) * 2 - 1\n"
        "m.image.save(x, '%(w)s/good.png')\n"
        "m.image.save(x, '%(w)s/good.jpg')\n"
        "m.image.save(x, '%(w)s/good.tif', {bits = 16})\n"
        "m.image.save(x:narrow(1, 1, 1), '%(w)s/grey.png')\n" % {"w": work})
    r = subprocess.run([monge, "run", "-e", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=dict(os.environ, MONGE_PLUGIN_PATH=""))
    if r.returncode != 0:
        sys.exit("corrupt_files: cannot make the test images:\n" + r.stdout.decode("utf-8", "replace"))
    return {"png": os.path.join(work, "good.png"), "jpeg": os.path.join(work, "good.jpg"),
            "tiff": os.path.join(work, "good.tif")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--monge", required=True)
    ap.add_argument("--map", required=True, help="a valid map file (format 3)")
    ap.add_argument("--work", required=True, help="scratch folder (emptied first)")
    ap.add_argument("--count", type=int, default=500, help="variants of each file (default 500)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=60, help="seconds per run (default 60)")
    ap.add_argument("--max-pixels", type=int, default=1 << 24, help="monge apply --max-pixels (default 2^24)")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--only", default="map,png,jpeg,tiff", help="which files to corrupt (default all)")
    ap.add_argument("--first", type=int, default=0, help="first variant number (default 0): a range of a longer run")
    a = ap.parse_args()

    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    good_map = os.path.join(work, "good.map")
    shutil.copyfile(a.map, good_map)
    sources = dict(make_inputs(a.monge, work), map=good_map)
    runner = Runner(os.path.abspath(a.monge), a.timeout)
    cap = ["--no-progress", "--max-pixels", str(a.max_pixels)]

    # Sanity: the valid files pass, so a refusal below is the corruption's doing.
    for kind in ("png", "jpeg", "tiff"):
        out = os.path.join(work, "sanity-%s.png" % kind)
        outcome, problem, log = check_run(runner, ["apply", good_map, sources[kind], out] + cap, out, work)
        if outcome != "ok":
            sys.exit("corrupt_files: the valid %s does not apply (%s):\n%s" % (kind, problem or outcome, log))

    jobs = []  # (kind, index, mutation, variant path)
    for kind in [k.strip() for k in a.only.split(",") if k.strip()]:
        data = open(sources[kind], "rb").read()
        muts = mutations_for(kind)
        ext = {"map": ".map", "png": ".png", "jpeg": ".jpg", "tiff": ".tif"}[kind]
        for i in range(a.first, a.first + a.count):
            rng = random.Random("%d/%s/%d" % (a.seed, kind, i))
            name, variant = rng.choice(muts)(data, rng)
            if variant == data:  # a no-op mutation: flip one bit instead
                name, variant = bit_flips(data, rng)
            d = os.path.join(work, kind, "%04d" % i)
            os.makedirs(d)
            path = os.path.join(d, "in" + ext)
            with open(path, "wb") as f:
                f.write(variant)
            jobs.append((kind, i, name, path))

    def one(job):
        kind, i, name, path = job
        d = os.path.dirname(path)
        runs = []
        if kind == "map":
            runs.append((["info", path], None))
            runs.append((["apply", path, sources["png"], os.path.join(d, "out.png")] + cap, os.path.join(d, "out.png")))
        else:
            runs.append((["apply", good_map, path, os.path.join(d, "out.png")] + cap, os.path.join(d, "out.png")))
        results = []
        for args, out in runs:
            outcome, problem, log = check_run(runner, args, out, d)
            results.append((kind, i, name, args[0], outcome, problem, log, path, args))
        return results

    counts = {}
    failures = []
    start = time.time()
    # One line per run as it ends (results.jsonl), so a long run that is stopped still tells.
    record = open(os.path.join(work, "results.jsonl"), "w", buffering=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for results in pool.map(one, jobs):
            for kind, i, name, cmd, outcome, problem, log, path, args in results:
                record.write(json.dumps({"kind": kind, "variant": i, "mutation": name, "command": cmd,
                                         "outcome": outcome, "problem": problem}) + "\n")
                counts.setdefault((kind, cmd), {}).setdefault(outcome, 0)
                counts[(kind, cmd)][outcome] += 1
                if problem:
                    failures.append((kind, i, name, cmd, outcome, problem, log, path, args))

    print("corrupt_files: %d variants (%d..%d) of each of %s (seed %d), %.0f s"
          % (a.count, a.first, a.first + a.count - 1, a.only, a.seed, time.time() - start))
    for (kind, cmd), c in sorted(counts.items()):
        print("  %-5s %-6s %s" % (kind, cmd, ", ".join("%s %d" % kv for kv in sorted(c.items()))))
    totals = {k: sum(1 for f in failures if f[4] == k) for k in ("crash", "hang", "partial")}
    print("corrupt_files: crashes %(crash)d, hangs %(hang)d, partial outputs %(partial)d" % totals)
    if failures:
        keep = os.path.join(work, "failures")
        os.makedirs(keep, exist_ok=True)
        for kind, i, name, cmd, outcome, problem, log, path, args in failures:
            base = os.path.join(keep, "%s-%04d-%s-%s" % (kind, i, cmd, name))
            shutil.copyfile(path, base + os.path.splitext(path)[1])
            with open(base + ".log", "w") as f:
                f.write("%s: %s\nmonge %s\n\n%s" % (outcome, problem, " ".join(args), log))
            print("  FAIL %s %04d (%s) %s: %s: %s" % (kind, i, name, cmd, outcome, problem))
            print("    " + "\n    ".join(log.strip().splitlines()[-5:]))
        print("corrupt_files: FAIL (inputs and logs in %s)" % keep)
        return 1
    print("corrupt_files: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
