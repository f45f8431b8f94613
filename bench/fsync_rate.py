"""The disk's raw durable-append rate: 189-byte write + fdatasync, as many
as fit in the given seconds, in the given directory. Prints appends/s."""
import os
import sys
import time

directory, secs = sys.argv[1], float(sys.argv[2])
path = os.path.join(directory, "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
# Preallocate, as the log does, so fdatasync journals no size change.
os.write(fd, b"\0" * (1 << 20))
os.lseek(fd, 0, os.SEEK_SET)
buf = b"x" * 189
n = 0
end = time.monotonic() + secs
while time.monotonic() < end:
    os.write(fd, buf)
    os.fdatasync(fd)
    n += 1
os.close(fd)
os.unlink(path)
print(f"{n / secs:.0f}")
