"""p50, p99 and max apply lag (ms, bucket upper bounds) per replica from a
Prometheus scrape of tributary_replica_apply_lag_seconds."""
import re
import sys

buckets = {}
for line in open(sys.argv[1]):
    m = re.match(r'tributary_replica_apply_lag_seconds_bucket\{replica="([^"]+)",le="([^"]+)"\} (\S+)', line)
    if m:
        le = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
        buckets.setdefault(m.group(1), []).append((le, float(m.group(3))))
for replica, bs in sorted(buckets.items()):
    bs.sort()
    total = bs[-1][1]
    def q(p):
        for le, c in bs:
            if c >= p * total:
                return "inf" if le == float("inf") else f"{le * 1000:g}"
        return "inf"
    print(f"{replica}\t{q(0.5)}\t{q(0.99)}\t{q(1.0)}")
