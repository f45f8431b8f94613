"""Average and p99 latency (ms) from pgbench per-transaction logs (-l).

Each log line: client_id transaction_no latency_us script_no epoch epoch_us.
Prints "avg_ms<TAB>p99_ms".
"""
import sys

lat = []
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                lat.append(int(parts[2]))
lat.sort()
if not lat:
    print("nan\tnan")
else:
    avg = sum(lat) / len(lat) / 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000
    print(f"{avg:.3f}\t{p99:.3f}")
