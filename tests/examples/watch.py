#!/usr/bin/env python3
# Follow MOUNT/.events beside other work: poll() says when lines are ready;
# under O_NONBLOCK a read with nothing ready fails with EAGAIN.
# Run: python3 watch.py [MOUNT]   (or SCOPEFS_MOUNT=MOUNT)
import os, select, sys

mnt = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SCOPEFS_MOUNT", "/run/scopes")
fd = os.open(os.path.join(mnt, ".events"), os.O_RDONLY | os.O_NONBLOCK)
poller = select.poll()                # or select, epoll, an event loop
poller.register(fd, select.POLLIN)
pending = b""
while True:
    poller.poll()
    try:
        pending += os.read(fd, 65536)
    except BlockingIOError:           # EAGAIN: nothing ready after all
        continue
    *lines, pending = pending.split(b"\n")   # a read may end inside a line
    for line in lines:
        seq, kind, pod, detail = line.decode().split(" ", 3)   # detail "-": none
        print(f"{kind:8} {pod} {detail}", flush=True)
