#!/usr/bin/env python3
"""mediafs benchmarks: throughput, memory and metadata against direct uploads and the
filesystem ceiling. Every figure is the median of --runs runs (default 3), on loopback against
the embedded Media Manager with a temporary data directory.

Writes bench/results.md and prints the same table.
"""
import argparse, hashlib, json, os, platform, shutil, signal, socket, statistics, subprocess
import sys, tempfile, threading, time, urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release", "mediafs")
MiB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RSSSampler:
    """Samples a process's resident set (VmRSS) every 20 ms; `peak` is the highest seen."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="mediafs-bench-", dir=args.workdir)
        self.key = "bench-key"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = self.base + "/site-media/v1"
        self.server = subprocess.Popen(
            [BIN, "serve", "--data", os.path.join(self.work, "data"), "--port", str(self.port), "--api-key", self.key,
             "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self.call("GET", "/files?paging.limit=1")
                break
            except OSError:
                time.sleep(0.1)
        self.mount_process, self.mountpoint = None, os.path.join(self.work, "mnt")
        os.makedirs(self.mountpoint)

    # --- plumbing -------------------------------------------------------------------------
    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api + path, data=data, method=method,
                                         headers={"Authorization": self.key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"{}")

    def mount(self, *extra):
        self.unmount()
        env = dict(os.environ, XDG_STATE_HOME=os.path.join(self.work, "state"), XDG_CACHE_HOME=os.path.join(self.work, "cache"))
        self.mount_process = subprocess.Popen(
            [BIN, "mount", self.mountpoint, "--server", self.base, "--api-key", self.key, "--log-level", "error", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for _ in range(200):
            if os.path.ismount(self.mountpoint):
                return
            time.sleep(0.05)
        raise RuntimeError("the mount did not come up")

    def unmount(self):
        if self.mount_process:
            self.mount_process.send_signal(signal.SIGINT)
            self.mount_process.wait(timeout=120)
            self.mount_process = None

    def close(self):
        self.unmount()
        self.server.send_signal(signal.SIGINT)
        self.server.wait(timeout=60)
        shutil.rmtree(self.work, ignore_errors=True)

    def purge(self, folder="media-root"):
        """Deletes a folder's files for good, to keep the disk in bounds."""
        while True:
            files = self.call("GET", f"/files?parentFolderId={folder}&paging.limit=1000")["files"]
            if not files:
                return
            self.call("POST", "/bulk/files/delete", {"fileIds": [f["id"] for f in files], "permanent": True})

    @staticmethod
    def timed(command, **kwargs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
        return time.perf_counter() - start

    def median(self, function):
        return statistics.median(function() for _ in range(self.args.runs))

    # --- benchmarks -----------------------------------------------------------------------
    def write(self, source, size):
        self.mount()
        def cp():
            seconds = self.timed(["cp", source, os.path.join(self.mountpoint, "w.bin")])
            self.purge()
            return size / MiB / seconds
        def upload():
            env = dict(os.environ, MEDIAFS_SERVER=self.base, MEDIAFS_API_KEY=self.key,
                       XDG_STATE_HOME=os.path.join(self.work, "state"))
            seconds = self.timed([BIN, "upload", source, "--log-level", "error"], env=env, stderr=subprocess.DEVNULL)
            self.purge()
            return size / MiB / seconds
        def tuspy():
            seconds = self.timed([sys.executable, "-c", TUSPY, self.api, self.key, source])
            self.purge()
            return size / MiB / seconds
        return {"mount cp": self.median(cp), "mediafs upload": self.median(upload), "tuspy": self.median(tuspy)}

    def read(self, source, size):
        generated = self.call("POST", "/files/generate-resumable-upload-url", {"mimeType": "application/octet-stream"})
        subprocess.run([sys.executable, "-c", TUSPY_UPLOAD, generated["uploadUrl"], generated["uploadToken"], source, "r.bin"],
                       check=True, stdout=subprocess.DEVNULL)
        url = self.call("GET", "/files?paging.limit=1")["files"][0]["url"]
        self.mount()
        target = os.path.join(self.mountpoint, "r.bin")
        def cat():
            subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], stderr=subprocess.DEVNULL)
            return size / MiB / self.timed(["cat", target])
        def curl():
            return size / MiB / self.timed(["curl", "-sf", "-o", "/dev/null", url])
        result = {"mount cat": self.median(cat), "curl": self.median(curl)}
        self.unmount()
        self.purge()
        return result

    def small_files(self):
        source = os.path.join(self.work, "small")
        os.makedirs(source)
        for index in range(self.args.small_files):
            with open(os.path.join(source, f"f{index:05d}.dat"), "wb") as f:
                f.write(os.urandom(32 * 1024))
        self.mount()
        def into_mount():
            target = os.path.join(self.mountpoint, f"rsync-{time.monotonic_ns()}")
            seconds = self.timed(["rsync", "-a", source + "/", target + "/"])
            return self.args.small_files / seconds
        def into_local():
            target = os.path.join(self.work, f"local-{time.monotonic_ns()}")
            seconds = self.timed(["rsync", "-a", source + "/", target + "/"])
            shutil.rmtree(target)
            return self.args.small_files / seconds
        result = {"rsync into mount": self.median(into_mount), "rsync into local dir": self.median(into_local)}
        self.unmount()
        return result

    def listing(self):
        folder = self.call("POST", "/folders", {"displayName": "listing"})["folder"]["id"]
        count = self.args.list_files
        def make(index):
            generated = self.call("POST", "/files/generate-upload-url",
                                  {"mimeType": "image/jpeg", "fileName": f"img{index:05d}.jpg", "parentFolderId": folder})
            request = urllib.request.Request(generated["uploadUrl"] + f"?filename=img{index:05d}.jpg", data=b"x", method="PUT")
            urllib.request.urlopen(request, timeout=60).read()
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(make, range(count)))
        def api_paging():
            start = time.perf_counter()
            for kind in ("folders", "files"):
                cursor = ""
                while True:
                    query = f"/{kind}?parentFolderId={folder}&paging.limit=1000" + (f"&paging.cursor={cursor}" if cursor else "")
                    subprocess.run(["curl", "-sf", "-o", os.path.join(self.work, "page.json"), "-H", f"Authorization: {self.key}",
                                    self.api + query], check=True)
                    with open(os.path.join(self.work, "page.json")) as f:
                        page = json.load(f)
                    cursor = page["nextCursor"]["cursors"].get("next") if page["nextCursor"].get("hasNext") else ""
                    if not cursor:
                        break
            return time.perf_counter() - start
        target = os.path.join(self.mountpoint, "listing")
        def cold():
            self.mount("--dir-ttl", "30", "--attr-ttl", "30")
            seconds = self.timed(["ls", "-l", target])
            return seconds
        def warm():
            return self.timed(["ls", "-l", target])
        result = {"API paging (curl)": self.median(api_paging), "ls -l cold": self.median(cold)}
        result["ls -l warm"] = self.median(warm)
        lines = subprocess.run(["ls", target], check=True, capture_output=True, text=True).stdout.split()
        assert len(lines) == count, f"ls listed {len(lines)} of {count}"
        self.unmount()
        return result

    def memory(self, source):
        self.mount()
        result = {}
        with RSSSampler(self.mount_process.pid) as mount_rss, RSSSampler(self.server.pid) as server_rss:
            subprocess.run(["cp", source, os.path.join(self.mountpoint, "m0.bin")], check=True)
        result["one copy"] = (mount_rss.peak, server_rss.peak)
        self.purge()
        with RSSSampler(self.mount_process.pid) as mount_rss, RSSSampler(self.server.pid) as server_rss:
            copies = [subprocess.Popen(["cp", source, os.path.join(self.mountpoint, f"m{i}.bin")]) for i in range(1, 5)]
            for copy in copies:
                assert copy.wait() == 0
        result["four copies"] = (mount_rss.peak, server_rss.peak)
        self.unmount()
        self.purge()
        return result


TUSPY = r'''
import json, sys, urllib.request
from tusclient import client
api, key, path = sys.argv[1:4]
request = urllib.request.Request(api + "/files/generate-resumable-upload-url", method="POST",
    data=json.dumps({"mimeType": "application/octet-stream"}).encode(),
    headers={"Authorization": key, "Content-Type": "application/json"})
generated = json.load(urllib.request.urlopen(request))
url, token = generated["uploadUrl"], generated["uploadToken"]
uploader = client.TusClient(url).uploader(path, chunk_size=8 * 1024 * 1024,
    metadata={"filename": "t.bin", "contentType": "application/octet-stream", "token": token})
uploader.upload()
urllib.request.urlopen(urllib.request.Request(url + "/" + token + "?filename=t.bin", data=b"{}", method="PUT",
    headers={"Content-Type": "application/json"})).read()
'''

TUSPY_UPLOAD = r'''
import sys, urllib.request
from tusclient import client
url, token, path, name = sys.argv[1:5]
client.TusClient(url).uploader(path, chunk_size=8 * 1024 * 1024,
    metadata={"filename": name, "contentType": "application/octet-stream", "token": token}).upload()
urllib.request.urlopen(urllib.request.Request(url + "/" + token + "?filename=" + name, data=b"{}", method="PUT",
    headers={"Content-Type": "application/json"})).read()
'''


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Linux {platform.release()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the large file (MiB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--list-files", type=int, default=10000)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "results.md"))
    args = parser.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: run `swift build -c release` (make bench does)")

    bench = Bench(args)
    try:
        source = os.path.join(bench.work, "large.bin")
        with open(source, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MiB))
        size = args.size_mib * MiB
        print(f"benchmarking on {machine()}", flush=True)
        write = bench.write(source, size); print("write", write, flush=True)
        read = bench.read(source, size); print("read", read, flush=True)
        small = bench.small_files(); print("small files", small, flush=True)
        listing = bench.listing(); print("listing", listing, flush=True)
        memory = bench.memory(source); print("memory", memory, flush=True)
    finally:
        bench.close()

    def mib(value):
        return f"{value / MiB:.1f} MiB"
    rows = [
        ("Write: cp into the mount", f"{write['mount cp']:.0f} MiB/s", ""),
        ("Write: `mediafs upload` (direct)", f"{write['mediafs upload']:.0f} MiB/s", ""),
        ("Write: tuspy (independent client)", f"{write['tuspy']:.0f} MiB/s", ""),
        ("Write ratio mount / direct", f"{write['mount cp'] / write['mediafs upload']:.2f}", "≥ 0.85"),
        ("Read: cat from the mount", f"{read['mount cat']:.0f} MiB/s", ""),
        ("Read: curl of the URL", f"{read['curl']:.0f} MiB/s", ""),
        ("Read ratio mount / curl", f"{read['mount cat'] / read['curl']:.2f}", "≥ 0.85"),
        (f"Small files: rsync -a of {args.small_files} × 32 KiB into the mount", f"{small['rsync into mount']:.0f} files/s", ""),
        ("Small files: the same into a local directory", f"{small['rsync into local dir']:.0f} files/s", ""),
        (f"Listing: API paging of {args.list_files} files (curl)", f"{listing['API paging (curl)']:.2f} s", ""),
        ("Listing: ls -l cold", f"{listing['ls -l cold']:.2f} s",
         f"≤ {2 * listing['API paging (curl)']:.2f} s (2 × API)"),
        ("Listing: ls -l warm", f"{listing['ls -l warm']:.2f} s", "≤ 0.2 s"),
        ("Memory: mount peak RSS, one copy", mib(memory["one copy"][0]), "≤ 64 MiB"),
        ("Memory: server peak RSS, one copy", mib(memory["one copy"][1]), "≤ 64 MiB"),
        ("Memory: mount peak RSS, four copies at once", mib(memory["four copies"][0]), "≤ 64 + 4 × 16 MiB"),
        ("Memory: server peak RSS, four copies at once", mib(memory["four copies"][1]), ""),
    ]
    table = ["| Measure | Result | Target |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join([
        "# mediafs benchmark results", "",
        f"Machine: {machine()}. Loopback, embedded Media Manager, release build; each figure the median of "
        f"{args.runs} runs; large file {args.size_mib} MiB; tus chunks 8 MiB.", "",
        *table, "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make bench`.", ""])
    with open(args.output, "w") as f:
        f.write(text)
    print()
    print("\n".join(table))


if __name__ == "__main__":
    main()
