"""Sum of a Prometheus counter (all label sets) from a /metrics URL; 0 if absent."""
import sys
import urllib.request

url, name = sys.argv[1], sys.argv[2]
try:
    body = urllib.request.urlopen(url, timeout=5).read().decode()
except OSError:
    print(0)
    sys.exit(0)
total = 0.0
for line in body.splitlines():
    if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
        total += float(line.rsplit(" ", 1)[1])
print(f"{total:.0f}")
