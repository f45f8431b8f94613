"""Latency (ms) from pgbench per-transaction logs (-l).

Each log line: client_id transaction_no latency_us script_no epoch epoch_us.
Prints "avg_ms<TAB>p99_ms"; with --hist NAME first, a Markdown table row
instead: NAME, the share of transactions in each latency bucket, then
p50, p99 and p99.9 (bench/ab.sh with HIST=1 prints these).
"""
import sys

BUCKETS_MS = [1, 2, 5, 10, 20, 50]

args = sys.argv[1:]
hist = None
if args[:1] == ["--hist"]:
    hist, args = args[1], args[2:]
lat = []
for path in args:
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                lat.append(int(parts[2]))
lat.sort()


def pct(q):
    return lat[min(len(lat) - 1, int(len(lat) * q))] / 1000


if hist is not None:
    if not lat:
        print(f"| {hist} | no transactions |")
        sys.exit(0)
    counts = [0] * (len(BUCKETS_MS) + 1)
    for us in lat:
        i = next((k for k, b in enumerate(BUCKETS_MS) if us < b * 1000), len(BUCKETS_MS))
        counts[i] += 1
    shares = " | ".join(f"{100 * c / len(lat):.2f}%" for c in counts)
    print(f"| {hist} | {len(lat):,} | {shares} | {pct(0.5):.2f} | {pct(0.99):.2f} | {pct(0.999):.2f} |")
elif not lat:
    print("nan\tnan")
else:
    avg = sum(lat) / len(lat) / 1000
    print(f"{avg:.3f}\t{pct(0.99):.3f}")
