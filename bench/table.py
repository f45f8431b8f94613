"""Side-by-side table of bench/run.sh results, Tributary / PostgreSQL per row."""
import datetime
import os
import subprocess
import sys

path, secs, clients, threads = sys.argv[1:5]
rows = {}
for line in open(path):
    system, mode, script, proto, tps, avg, p99, failed = line.rstrip("\n").split("\t")
    rows[(system, mode, script, proto)] = (float(tps), float(avg), float(p99), int(failed))

def cores():
    return os.cpu_count()

print(f"# Tributary vs PostgreSQL 15 streaming replication ({datetime.date.today()})\n")
print(f"pgbench -n -c {clients} -j {threads} -T {secs}; 3 copies of the data on each side "
      f"(Tributary: 3 replicas; PostgreSQL: primary + 2 standbys); {cores()} cores.\n")
print("| ack | script | -M | PG TPS | Trib TPS | TPS ratio | PG avg ms | Trib avg ms | PG p99 ms | Trib p99 ms | failed (PG/Trib) |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for mode in ["async", "semi-sync", "sync"]:
    for script in ["w_insert", "w_update", "w_read"]:
        for proto in ["prepared", "simple"]:
            pg = rows.get(("postgresql", mode, script, proto))
            tr = rows.get(("tributary", mode, script, proto))
            if not pg or not tr:
                continue
            ratio = tr[0] / pg[0] if pg[0] else float("nan")
            print(f"| {mode} | {script} | {proto} | {pg[0]:,.0f} | {tr[0]:,.0f} | {ratio:.2f} | "
                  f"{pg[1]:.2f} | {tr[1]:.2f} | {pg[2]:.2f} | {tr[2]:.2f} | {pg[3]}/{tr[3]} |")
