"""Side-by-side table of bench/run.sh results, Tributary / PostgreSQL per row."""
import datetime
import os
import subprocess
import sys

path, secs, clients, threads, raw_fsyncs = sys.argv[1:6]
raw_fsyncs = float(raw_fsyncs)
rows = {}
for line in open(path):
    system, mode, script, proto, tps, avg, p99, failed, appends, fsyncs = line.rstrip("\n").split("\t")
    rows[(system, mode, script, proto)] = (float(tps), float(avg), float(p99), int(failed),
                                           int(appends), int(fsyncs))

def cores():
    return os.cpu_count()

print(f"# Tributary vs PostgreSQL 15 streaming replication ({datetime.date.today()})\n")
print(f"pgbench -n -c {clients} -j {threads} -T {secs}; 3 copies of the data on each side "
      f"(Tributary: 3 replicas; PostgreSQL: primary + 2 standbys); {cores()} cores.\n")
print(f"Physical limit: Tributary's records per fsync during the row × this disk's raw "
      f"write+fdatasync rate ({raw_fsyncs:,.0f}/s, bench/fsync_rate.py); one record per transaction. "
      f"tpcb is pgbench's built-in TPC-B-like transaction (sums checked equal after each run).\n")
print("| ack | script | -M | PG TPS | Trib TPS | TPS ratio | PG avg ms | Trib avg ms | PG p99 ms | Trib p99 ms | p99 ratio | records/fsync | of limit | failed (PG/Trib) |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for mode in ["async", "semi-sync", "sync"]:
    for script in ["w_insert", "w_update", "tpcb", "w_read"]:
        for proto in ["prepared", "simple"]:
            pg = rows.get(("postgresql", mode, script, proto))
            tr = rows.get(("tributary", mode, script, proto))
            if not pg or not tr:
                continue
            ratio = tr[0] / pg[0] if pg[0] else float("nan")
            p99_ratio = tr[2] / pg[2] if pg[2] else float("nan")
            if script == "w_read" or not tr[5]:
                per_fsync, of_limit = "", ""
            else:
                rpf = tr[4] / tr[5]
                per_fsync = f"{rpf:.1f}"
                of_limit = f"{tr[0] / (rpf * raw_fsyncs):.2f}"
            print(f"| {mode} | {script} | {proto} | {pg[0]:,.0f} | {tr[0]:,.0f} | {ratio:.2f} | "
                  f"{pg[1]:.2f} | {tr[1]:.2f} | {pg[2]:.2f} | {tr[2]:.2f} | {p99_ratio:.1f} | "
                  f"{per_fsync} | {of_limit} | {pg[3]}/{tr[3]} |")
