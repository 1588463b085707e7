#!/usr/bin/env python3
# scopefs from Python: register, adopt, set rules, a refusal, release.
# Run: python3 example.py [MOUNT]   (or SCOPEFS_MOUNT=MOUNT)
import errno, os, sys

mnt = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SCOPEFS_MOUNT", "/run/scopes")
pod = os.path.join(mnt, "worker")

def put(path, text):                  # one write() holding the whole text
    with open(path, "w") as f:
        f.write(text)

def get(path):
    with open(path) as f:
        return f.read()

os.mkdir(pod)                         # registers worker, owned by this process
put(pod + "/pid", "%d\n" % os.getpid())   # adopts (already ours here)
put(pod + "/allow", "write recursive /srv/proj/src\nread recursive /srv/proj\n")
print("worker: pid %s, session %s" % (get(pod + "/pid").strip(), get(pod + "/session").strip()))
print(get(pod + "/allow"), end="")

os.mkdir(os.path.join(mnt, "rival"))
try:
    put(os.path.join(mnt, "rival", "allow"), "write recursive /srv/proj/src/lib\n")
except OSError as e:
    print("rival refused:", errno.errorcode[e.errno])   # EBUSY: worker holds it

os.rmdir(os.path.join(mnt, "rival"))  # releases
os.rmdir(pod)
print("released")
