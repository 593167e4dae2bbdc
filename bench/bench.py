#!/usr/bin/env python3
"""mediafs benchmarks.

Loopback sections (against the embedded Media Manager, `mediafs serve`, with a temporary data
directory; each figure the median of --runs runs):
  write    cp into the mount vs `mediafs upload`, tuspy and `rclone mount` (cache off) of
           `rclone serve webdav`
  read     cat from the mount (page cache dropped) vs curl of the same URL and `rclone mount`
           (cache off) of `rclone serve webdav` of the same file
  small    rsync -a of many small files into the mount and into a local directory
  listing  ls -l of a large folder, cold and warm, vs paging the API
  memory   peak RSS of the mount and the server with 1 and with --writers writers at once
  inodes   find + stat over --inode-files files: the mount's RSS idle, at its peak, and after
           the kernel forgets the inodes (echo 2 > /proc/sys/vm/drop_caches)
Wide-area section (once each, through `mediafs-faultproxy`: RTT --wan-rtt-ms, --wan-up-mbit
up, --wan-down-mbit down), mediafs side by side with `rclone mount --vfs-cache-mode writes` of
`rclone serve webdav` behind the same link:
  wan      rsync -a of --wan-files × 32 KiB (default mode and --write-back --transfers N): until
           rsync returns and until the last file is stored; cp of a --wan-size-mib file until it
           is stored, and cat of it (page cache dropped, fresh mount), as MiB/s and % of the link

Run all with `make bench` (release build first), or some with
`bench/run.sh --sections wan,inodes`. Writes bench/results.md and prints the same tables. Mount
flags the build does not know yet (a usage error at start) show as "n/a (flag missing)".
"""
import argparse, http.client, json, os, platform, shutil, signal, socket, statistics, subprocess
import sys, tempfile, threading, time, traceback, urllib.parse, urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release", "mediafs")
PROXY_BIN = os.path.join(ROOT, ".build", "release", "mediafs-faultproxy")
MiB = 1 << 20
KEY = "bench-key"
SECTIONS = ["write", "read", "small", "listing", "memory", "inodes", "wan"]
NA_FLAG = "n/a (flag missing)"


class FlagMissing(Exception):
    """The mount rejected a command-line flag (a usage error before mounting)."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def drop_caches(level=3):
    """Drops the page cache (3) or dentries and inodes (2); needs root, ignored otherwise."""
    subprocess.run(["sh", "-c", f"sync; echo {level} > /proc/sys/vm/drop_caches"], stderr=subprocess.DEVNULL)


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def stop_process(process, timeout=60):
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def timed(command, **kwargs):
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def poll(condition, timeout, interval=0.05):
    """Calls `condition` until it is true; returns the seconds it took, or None after `timeout`."""
    start = time.perf_counter()
    while True:
        if condition():
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            return None
        time.sleep(interval)


class RSSSampler:
    """Samples a process's resident set (VmRSS) every 20 ms; `peak` is the highest seen."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            value = rss(self.pid)
            if value == 0 and not os.path.exists(f"/proc/{self.pid}"):
                return
            self.peak = max(self.peak, value)
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --- the parts under test -----------------------------------------------------------------------

class Server:
    """`mediafs serve` with its own data directory; `public_url` when it sits behind a proxy."""

    def __init__(self, work, name, port=None, public_url=None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = self.base + "/site-media/v1"
        arguments = [BIN, "serve", "--data", os.path.join(work, name), "--port", str(self.port), "--api-key", KEY,
                     "--log-level", "error"]
        if public_url:
            arguments += ["--public-url", public_url]
        self.process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                self.call("GET", "/files?paging.limit=1")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server did not come up")

    @property
    def pid(self):
        return self.process.pid

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api + path, data=data, method=method,
                                         headers={"Authorization": KEY, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"{}")

    def files(self, folder="media-root"):
        """Every file in a folder (all pages)."""
        result, cursor = [], ""
        while True:
            page = self.call("GET", f"/files?parentFolderId={folder}&paging.limit=1000"
                             + (f"&paging.cursor={cursor}" if cursor else ""))
            result += page.get("files", [])
            paging = page.get("nextCursor", {})
            cursor = paging.get("cursors", {}).get("next") if paging.get("hasNext") else ""
            if not cursor:
                return result

    def folder_id(self, name, parent="media-root"):
        folders = self.call("GET", f"/folders?parentFolderId={parent}&paging.limit=1000").get("folders", [])
        return next((f["id"] for f in folders if f["displayName"] == name), None)

    def stored(self, folder_name, expected):
        """How many of `expected` ({name: size}) are stored, complete, in a folder of the root."""
        folder = self.folder_id(folder_name) if folder_name else "media-root"
        if folder is None:
            return 0
        return sum(1 for f in self.files(folder)
                   if f["displayName"] in expected and int(f.get("sizeInBytes", -1)) == expected[f["displayName"]])

    def purge(self, folder="media-root"):
        """Deletes a folder's files for good, to keep the disk in bounds."""
        while True:
            files = self.call("GET", f"/files?parentFolderId={folder}&paging.limit=1000")["files"]
            if not files:
                return
            self.call("POST", "/bulk/files/delete", {"fileIds": [f["id"] for f in files], "permanent": True})

    def close(self):
        stop_process(self.process)


class KeepAlive:
    """One keep-alive HTTP connection per thread to a server, for creating many files fast."""

    def __init__(self, port):
        self.port, self.local = port, threading.local()

    def request(self, method, path, body=None, headers=None):
        for attempt in range(4):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                connection.request(method, path, body=body, headers=headers or {})
                response = connection.getresponse()
                data = response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                self.local.connection = None
                if attempt == 3:
                    raise
                time.sleep(0.1 * 2 ** attempt)
                continue
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:200]!r}")
            return data

    def api(self, method, path, body):
        return json.loads(self.request(method, "/site-media/v1" + path, json.dumps(body).encode(),
                                       {"Authorization": KEY, "Content-Type": "application/json"}))

    def simple_upload(self, folder, name, content=b"x"):
        generated = self.api("POST", "/files/generate-upload-url",
                             {"mimeType": "image/jpeg", "fileName": name, "parentFolderId": folder})
        url = urllib.parse.urlsplit(generated["uploadUrl"])
        query = (url.query + "&" if url.query else "") + "filename=" + urllib.parse.quote(name)
        self.request("PUT", url.path + "?" + query, content, {"Content-Type": "image/jpeg"})


class Mount:
    """`mediafs mount` on a mountpoint of its own, with fresh state and cache directories."""

    def __init__(self, work, name, server_url):
        self.work, self.name, self.server_url = work, name, server_url
        self.mountpoint = os.path.join(work, name)
        os.makedirs(self.mountpoint, exist_ok=True)
        self.process, self.generation = None, 0

    @property
    def pid(self):
        return self.process.pid

    def path(self, *parts):
        return os.path.join(self.mountpoint, *parts)

    def start(self, *extra, fresh=False):
        """Mounts; raises FlagMissing when the CLI rejects a flag. `fresh` starts with empty
        state and cache directories (nothing of earlier runs on local disk)."""
        self.stop()
        if fresh:
            self.generation += 1
        home = os.path.join(self.work, f"{self.name}-home-{self.generation}")
        env = dict(os.environ, XDG_STATE_HOME=os.path.join(home, "state"), XDG_CACHE_HOME=os.path.join(home, "cache"))
        log = os.path.join(self.work, f"{self.name}.log")
        with open(log, "w") as stderr:
            self.process = subprocess.Popen(
                [BIN, "mount", self.mountpoint, "--server", self.server_url, "--api-key", KEY, "--log-level", "error",
                 *extra], stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.ismount(self.mountpoint):
                return
            code = self.process.poll()
            if code is not None:
                self.process = None
                with open(log) as f:
                    message = f.read().strip()
                if code == 64 or "Unknown option" in message or "Error: Unknown" in message:
                    raise FlagMissing(message.splitlines()[0] if message else f"exit {code}")
                raise RuntimeError(f"the mount exited with {code}: {message[:500]}")
            time.sleep(0.05)
        raise RuntimeError("the mount did not come up")

    def stop(self):
        if self.process:
            stop_process(self.process, timeout=300)
            self.process = None
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-uz", self.mountpoint], stderr=subprocess.DEVNULL)


class Proxy:
    """`mediafs-faultproxy` in front of a port: the emulated wide-area link."""

    def __init__(self, target_port, delay_ms, up_mbit, down_mbit, port=0):
        self.process = subprocess.Popen(
            [PROXY_BIN, "--listen", str(port), "--target", f"127.0.0.1:{target_port}", "--delay-ms", str(delay_ms),
             "--up-mbit", str(up_mbit), "--down-mbit", str(down_mbit)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline().strip()
        if not line.isdigit():
            stop_process(self.process)
            raise RuntimeError(f"mediafs-faultproxy did not start (printed {line!r})")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self):
        stop_process(self.process)


def rclone_env(work, url):
    """The rclone webdav remote `bench:` from environment variables (no rclone.conf of the user)."""
    config = os.path.join(work, "rclone.conf")
    open(config, "a").close()
    return dict(os.environ, RCLONE_CONFIG=config, RCLONE_CONFIG_BENCH_TYPE="webdav",
                RCLONE_CONFIG_BENCH_URL=url, RCLONE_CONFIG_BENCH_VENDOR="other")


class RcloneServe:
    """`rclone serve webdav` of a local directory on a loopback port."""

    def __init__(self, work, directory):
        self.directory, self.port = directory, free_port()
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(work, "rclone-serve.log"), "a") as log:
            self.process = subprocess.Popen(
                ["rclone", "serve", "webdav", directory, "--addr", f"127.0.0.1:{self.port}", "--config",
                 os.path.join(work, "rclone.conf")], stdout=subprocess.DEVNULL, stderr=log)
        wait_for_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self):
        stop_process(self.process)


class RcloneMount:
    """`rclone mount` of the webdav remote at `url`, with `--vfs-cache-mode` `cache_mode`."""

    def __init__(self, work, name, url, cache_mode):
        self.work, self.name, self.url, self.cache_mode = work, name, url, cache_mode
        self.mountpoint = os.path.join(work, name)
        os.makedirs(self.mountpoint, exist_ok=True)
        self.process, self.generation = None, 0

    @property
    def pid(self):
        return self.process.pid

    def path(self, *parts):
        return os.path.join(self.mountpoint, *parts)

    def start(self):
        """Mounts with an empty cache directory."""
        self.stop()
        self.generation += 1
        with open(os.path.join(self.work, f"{self.name}.log"), "a") as log:
            self.process = subprocess.Popen(
                ["rclone", "mount", "bench:", self.mountpoint, "--vfs-cache-mode", self.cache_mode,
                 "--cache-dir", os.path.join(self.work, f"{self.name}-cache-{self.generation}")],
                stdout=subprocess.DEVNULL, stderr=log, env=rclone_env(self.work, self.url))
        if poll(lambda: os.path.ismount(self.mountpoint) or self.process.poll() is not None, 30) is None \
                or not os.path.ismount(self.mountpoint):
            raise RuntimeError(f"rclone mount did not come up (see {self.name}.log)")

    def stop(self):
        if self.process:
            stop_process(self.process, timeout=120)
            self.process = None
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount", "-uz", self.mountpoint], stderr=subprocess.DEVNULL)


# --- the benchmarks -----------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="mediafs-bench-", dir=args.workdir)
        self.cleanups = []
        self.server = self.keep(Server(self.work, "data"))
        self.mount = self.keep(Mount(self.work, "mnt", self.server.base), "stop")
        self.source, self.size = None, args.size_mib * MiB

    def keep(self, thing, method="close"):
        self.cleanups.append(getattr(thing, method))
        return thing

    def close(self):
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as error:  # keep cleaning up
                print(f"cleanup: {error}", file=sys.stderr)
        shutil.rmtree(self.work, ignore_errors=True)

    def median(self, function):
        return statistics.median(function() for _ in range(self.args.runs))

    def large_file(self):
        if self.source is None:
            self.source = os.path.join(self.work, "large.bin")
            write_random(self.source, self.size)
        return self.source

    def rclone_loopback(self):
        """`rclone serve webdav` of a directory holding the large file, and `rclone mount` (cache off) of it."""
        if not hasattr(self, "_rclone_loopback"):
            directory = os.path.join(self.work, "rclone-served")
            os.makedirs(directory, exist_ok=True)
            os.link(self.large_file(), os.path.join(directory, "large.bin"))
            serve = self.keep(RcloneServe(self.work, directory))
            mount = self.keep(RcloneMount(self.work, "rclone-mnt", serve.url, "off"), "stop")
            self._rclone_loopback = (serve, mount)
        return self._rclone_loopback

    # --- loopback ---------------------------------------------------------------------------------
    def write(self):
        source, size, server = self.large_file(), self.size, self.server
        self.mount.start()
        def cp():
            seconds = timed(["cp", source, self.mount.path("w.bin")])
            server.purge()
            return size / MiB / seconds
        def upload():
            env = dict(os.environ, MEDIAFS_SERVER=server.base, MEDIAFS_API_KEY=KEY,
                       XDG_STATE_HOME=os.path.join(self.work, "upload-state"))
            seconds = timed([BIN, "upload", source, "--log-level", "error"], env=env, stderr=subprocess.DEVNULL)
            server.purge()
            return size / MiB / seconds
        def tuspy():
            seconds = timed([sys.executable, "-c", TUSPY, server.api, KEY, source])
            server.purge()
            return size / MiB / seconds
        result = {"mount cp": self.median(cp), "mediafs upload": self.median(upload), "tuspy": self.median(tuspy)}
        self.mount.stop()
        serve, rclone = self.rclone_loopback()
        rclone.start()
        peaks = []
        def rclone_cp():
            target = rclone.path("w.bin")
            with RSSSampler(rclone.pid) as sampler:
                seconds = timed(["cp", source, target])
            peaks.append(sampler.peak)
            os.remove(os.path.join(serve.directory, "w.bin"))
            return size / MiB / seconds
        result["rclone cp"] = self.median(rclone_cp)
        result["rclone peak RSS"] = max(peaks)
        rclone.stop()
        return result

    def read(self):
        source, size, server = self.large_file(), self.size, self.server
        generated = server.call("POST", "/files/generate-resumable-upload-url", {"mimeType": "application/octet-stream"})
        subprocess.run([sys.executable, "-c", TUSPY_UPLOAD, generated["uploadUrl"], generated["uploadToken"], source,
                        "r.bin"], check=True, stdout=subprocess.DEVNULL)
        url = server.call("GET", "/files?paging.limit=1")["files"][0]["url"]
        self.mount.start()
        peaks = {"mount": [], "rclone": []}
        def cat():
            drop_caches()
            with RSSSampler(self.mount.pid) as sampler:
                seconds = timed(["cat", self.mount.path("r.bin")])
            peaks["mount"].append(sampler.peak)
            return size / MiB / seconds
        def curl():
            drop_caches()
            return size / MiB / timed(["curl", "-sf", "-o", "/dev/null", url])
        result = {"mount cat": self.median(cat), "curl": self.median(curl)}
        self.mount.stop()
        server.purge()
        _, rclone = self.rclone_loopback()
        rclone.start()
        def rclone_cat():
            drop_caches()
            with RSSSampler(rclone.pid) as sampler:
                seconds = timed(["cat", rclone.path("large.bin")])
            peaks["rclone"].append(sampler.peak)
            return size / MiB / seconds
        result["rclone cat"] = self.median(rclone_cat)
        result["mount peak RSS reading"] = max(peaks["mount"])
        result["rclone peak RSS reading"] = max(peaks["rclone"])
        rclone.stop()
        return result

    def small(self):
        count = self.args.small_files
        source = make_small_files(os.path.join(self.work, "small"), count)
        self.mount.start()
        def into_mount():
            target = self.mount.path(f"rsync-{time.monotonic_ns()}")
            return count / timed(["rsync", "-a", source + "/", target + "/"])
        def into_local():
            target = os.path.join(self.work, f"local-{time.monotonic_ns()}")
            seconds = timed(["rsync", "-a", source + "/", target + "/"])
            shutil.rmtree(target)
            return count / seconds
        result = {"rsync into mount": self.median(into_mount), "rsync into local dir": self.median(into_local)}
        self.mount.stop()
        return result

    def listing(self):
        server, count = self.server, self.args.list_files
        folder = server.call("POST", "/folders", {"displayName": "listing"})["folder"]["id"]
        client = KeepAlive(server.port)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda index: client.simple_upload(folder, f"img{index:05d}.jpg"), range(count)))
        def api_paging():
            start = time.perf_counter()
            for kind in ("folders", "files"):
                cursor = ""
                while True:
                    query = f"/{kind}?parentFolderId={folder}&paging.limit=1000" + (f"&paging.cursor={cursor}" if cursor else "")
                    page_file = os.path.join(self.work, "page.json")
                    subprocess.run(["curl", "-sf", "-o", page_file, "-H", f"Authorization: {KEY}", server.api + query],
                                   check=True)
                    with open(page_file) as f:
                        page = json.load(f)
                    cursor = page["nextCursor"]["cursors"].get("next") if page["nextCursor"].get("hasNext") else ""
                    if not cursor:
                        break
            return time.perf_counter() - start
        target = self.mount.path("listing")
        def cold():
            self.mount.start("--dir-ttl", "30", "--attr-ttl", "30")
            return timed(["ls", "-l", target])
        result = {"API paging (curl)": self.median(api_paging), "ls -l cold": self.median(cold)}
        result["ls -l warm"] = self.median(lambda: timed(["ls", "-l", target]))
        listed = subprocess.run(["ls", target], check=True, capture_output=True, text=True).stdout.split()
        assert len(listed) == count, f"ls listed {len(listed)} of {count}"
        self.mount.stop()
        return result

    def memory(self):
        source, server, writers = self.large_file(), self.server, self.args.writers
        self.mount.start()
        result = {}
        with RSSSampler(self.mount.pid) as mount_rss, RSSSampler(server.pid) as server_rss:
            subprocess.run(["cp", source, self.mount.path("m0.bin")], check=True)
        result["1 writer"] = (mount_rss.peak, server_rss.peak)
        server.purge()
        # Each writer copies a part of the large file (together twice its size, at least 64 MiB each).
        part = max(64 * MiB, 2 * self.size // writers)
        parts = os.path.join(self.work, "part.bin")
        with open(source, "rb") as f, open(parts, "wb") as out:
            out.write(f.read(part))
        with RSSSampler(self.mount.pid) as mount_rss, RSSSampler(server.pid) as server_rss:
            copies = [subprocess.Popen(["cp", parts, self.mount.path(f"m{i}.bin")]) for i in range(1, writers + 1)]
            failed = sum(1 for copy in copies if copy.wait() != 0)
        os.remove(parts)
        result[f"{writers} writers"] = (mount_rss.peak, server_rss.peak)
        result["writers failed"] = failed
        result["part"] = part
        self.mount.stop()
        server.purge()
        return result

    def inodes(self):
        """find + stat over many files; RSS idle, peak, and after the kernel forgets the inodes."""
        server, total, folders = self.server, self.args.inode_files, self.args.inode_folders
        per_folder = -(-total // folders)
        client = KeepAlive(server.port)
        start = time.perf_counter()
        root = client.api("POST", "/folders", {"displayName": "inodes"})["folder"]["id"]
        folder_ids = [client.api("POST", "/folders", {"displayName": f"d{index:03d}", "parentFolderId": root})["folder"]["id"]
                      for index in range(folders)]
        jobs = [(folder_ids[index // per_folder], f"f{index % per_folder:04d}.jpg") for index in range(total)]
        with ThreadPoolExecutor(self.args.setup_threads) as pool:
            list(pool.map(lambda job: client.simple_upload(*job), jobs, chunksize=64))
        setup = time.perf_counter() - start
        self.mount.start(fresh=True)
        subprocess.run(["ls", self.mount.mountpoint], check=True, stdout=subprocess.DEVNULL)
        idle = settle_rss(self.mount.pid)
        with RSSSampler(self.mount.pid) as sampler:
            started = time.perf_counter()
            counted = subprocess.run(
                ["sh", "-c", 'find "$1" -type f -print0 | xargs -0 stat -c %s | wc -l', "sh", self.mount.path("inodes")],
                check=True, capture_output=True, text=True).stdout.strip()
            walk = time.perf_counter() - started
        peak = sampler.peak
        before_drop = rss(self.mount.pid)
        drop_caches(2)
        after = settle_rss(self.mount.pid, timeout=30)
        self.mount.stop()
        if int(counted) != total:
            raise RuntimeError(f"find + stat saw {counted} of {total} files")
        return {"setup": setup, "walk": walk, "idle": idle, "peak": peak, "before drop": before_drop, "after": after}

    # --- wide area --------------------------------------------------------------------------------
    def wan(self):
        args = self.args
        link = dict(delay_ms=args.wan_rtt_ms / 2, up_mbit=args.wan_up_mbit, down_mbit=args.wan_down_mbit)
        result = {"mediafs": {}, "rclone": {}}
        count, size = args.wan_files, args.wan_size_mib * MiB
        small = make_small_files(os.path.join(self.work, "wan-small"), count)
        expected_small = {name: 32 * 1024 for name in os.listdir(small)}
        big = os.path.join(self.work, "wan-big.bin")
        write_random(big, size)
        timeout = args.wan_timeout

        # mediafs: `mediafs serve` behind the proxy (it hands out URLs through the proxy).
        server_port = free_port()
        proxy = Proxy(server_port, **link)
        try:
            server = Server(self.work, "wan-data", port=server_port, public_url=proxy.url)
            try:
                mount = Mount(self.work, "wan-mnt", proxy.url)
                try:
                    modes = [("default", []), ("write-back", ["--write-back", "--transfers", str(args.transfers)])]
                    for mode, flags in modes:
                        try:
                            mount.start(*flags, fresh=True)
                        except FlagMissing as missing:
                            print(f"wan {mode}: {missing}", flush=True)
                            result["mediafs"][f"rsync {mode}"] = NA_FLAG
                            continue
                        folder = f"rsync-{mode}"
                        start = time.perf_counter()
                        subprocess.run(["rsync", "-a", small + "/", mount.path(folder) + "/"], check=True)
                        returned = time.perf_counter() - start
                        waited = poll(lambda: server.stored(folder, expected_small) == count, timeout, 0.05)
                        stored = None if waited is None else time.perf_counter() - start
                        result["mediafs"][f"rsync {mode}"] = (returned, stored)
                        print(f"wan mediafs rsync {mode}", result["mediafs"][f"rsync {mode}"], flush=True)
                        mount.stop()
                    mount.start(fresh=True)
                    result["mediafs"]["cp"] = self.wan_cp(
                        big, mount.path("wan-big.bin"), lambda: server.stored(None, {"wan-big.bin": size}) == 1, timeout)
                    print("wan mediafs cp", result["mediafs"]["cp"], flush=True)
                    result["curl"] = self.wan_ceiling(server, big)
                    print("wan curl (up, down)", result["curl"], flush=True)
                    mount.start(fresh=True)  # nothing of the written file on local disk
                    drop_caches()
                    result["mediafs"]["cat"] = timed(["cat", mount.path("wan-big.bin")])
                    print("wan mediafs cat", result["mediafs"]["cat"], flush=True)
                finally:
                    mount.stop()
            finally:
                server.close()
        finally:
            proxy.close()

        # rclone: `rclone serve webdav` behind the same link, `rclone mount --vfs-cache-mode writes`.
        served = os.path.join(self.work, "wan-rclone-served")
        serve = RcloneServe(self.work, served)
        proxy = Proxy(serve.port, **link)
        try:
            mount = RcloneMount(self.work, "wan-rclone-mnt", proxy.url, "writes")
            try:
                mount.start()
                def stored(folder, expected):
                    directory = os.path.join(served, folder)
                    try:
                        return sum(1 for name in os.listdir(directory)
                                   if expected.get(name) == os.path.getsize(os.path.join(directory, name)))
                    except OSError:
                        return 0
                start = time.perf_counter()
                subprocess.run(["rsync", "-a", small + "/", mount.path("rsync") + "/"], check=True)
                returned = time.perf_counter() - start
                waited = poll(lambda: stored("rsync", expected_small) == count, timeout, 0.05)
                result["rclone"]["rsync"] = (returned, None if waited is None else time.perf_counter() - start)
                print("wan rclone rsync", result["rclone"]["rsync"], flush=True)
                result["rclone"]["cp"] = self.wan_cp(
                    big, mount.path("wan-big.bin"), lambda: stored("", {"wan-big.bin": size}) == 1, timeout)
                print("wan rclone cp", result["rclone"]["cp"], flush=True)
                mount.start()  # an empty cache directory
                drop_caches()
                result["rclone"]["cat"] = timed(["cat", mount.path("wan-big.bin")])
                print("wan rclone cat", result["rclone"]["cat"], flush=True)
            finally:
                mount.stop()
        finally:
            proxy.close()
            serve.close()
        shutil.rmtree(served, ignore_errors=True)
        return result

    @staticmethod
    def wan_ceiling(server, source):
        """What plain HTTP gets through the link: seconds for curl to PUT `source` as a simple
        upload, and to GET the stored wan-big.bin (page cache dropped); both URLs point at the proxy."""
        generated = server.call("POST", "/files/generate-upload-url",
                                {"mimeType": "application/octet-stream", "fileName": "ceiling.bin"})
        up = timed(["curl", "-sf", "-o", "/dev/null", "-T", source, "-H", "Expect:", "-H", "Content-Type: application/octet-stream",
                    generated["uploadUrl"] + "?filename=ceiling.bin"])
        url = next(f["url"] for f in server.files() if f["displayName"] == "wan-big.bin")
        drop_caches()
        down = timed(["curl", "-sf", "-o", "/dev/null", url])
        return up, down

    @staticmethod
    def wan_cp(source, target, is_stored, timeout):
        """cp, then wait until the file is stored: (seconds until cp returns, until stored or None)."""
        start = time.perf_counter()
        subprocess.run(["cp", source, target], check=True)
        returned = time.perf_counter() - start
        waited = poll(is_stored, timeout, 0.1)
        return returned, None if waited is None else time.perf_counter() - start


def write_random(path, size):
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
        f.write(os.urandom(size % MiB))


def make_small_files(directory, count):
    os.makedirs(directory, exist_ok=True)
    for index in range(count):
        with open(os.path.join(directory, f"f{index:05d}.dat"), "wb") as f:
            f.write(os.urandom(32 * 1024))
    return directory


def settle_rss(pid, timeout=10):
    """The process's RSS once it stops moving (under 1 MiB change over a second), or at `timeout`."""
    deadline = time.monotonic() + timeout
    samples = [rss(pid)]
    while time.monotonic() < deadline:
        time.sleep(0.25)
        samples.append(rss(pid))
        recent = samples[-5:]
        if len(recent) == 5 and max(recent) - min(recent) < MiB:
            break
    return samples[-1]


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


# --- the report ---------------------------------------------------------------------------------

def mib(value):
    return f"{value / MiB:.1f} MiB"


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "n/a"


def tables(args, r):
    """Markdown tables (title, rows of (measure, result, target)) for the sections that ran."""
    out = []
    if "write" in r or "read" in r:
        rows = []
        if "write" in r:
            w = r["write"]
            rows += [
                ("Write: cp into the mount", f"{w['mount cp']:.0f} MiB/s", ""),
                ("Write: `mediafs upload` (direct)", f"{w['mediafs upload']:.0f} MiB/s", ""),
                ("Write: tuspy (independent client)", f"{w['tuspy']:.0f} MiB/s", ""),
                ("Write: cp into `rclone mount` (cache off) of `rclone serve webdav`", f"{w['rclone cp']:.0f} MiB/s", ""),
                ("Write ratio mount / direct", ratio(w["mount cp"], w["mediafs upload"]), "≥ 0.85"),
                ("Write ratio mount / tuspy", ratio(w["mount cp"], w["tuspy"]), "≥ 1.0"),
                ("Write ratio mount / rclone", ratio(w["mount cp"], w["rclone cp"]), "≥ 2"),
            ]
        if "read" in r:
            d = r["read"]
            rows += [
                ("Read: cat from the mount", f"{d['mount cat']:.0f} MiB/s", ""),
                ("Read: curl of the URL", f"{d['curl']:.0f} MiB/s", ""),
                ("Read: cat from `rclone mount` (cache off) of `rclone serve webdav`", f"{d['rclone cat']:.0f} MiB/s", ""),
                ("Read ratio mount / curl", ratio(d["mount cat"], d["curl"]), "≥ 0.5"),
                ("Read ratio mount / rclone", ratio(d["mount cat"], d["rclone cat"]), "≥ 1.5"),
                ("Read: mount peak RSS while reading", mib(d["mount peak RSS reading"]), ""),
                ("Read: `rclone mount` peak RSS while reading", mib(d["rclone peak RSS reading"]), ""),
            ]
        out.append((f"Throughput on loopback ({args.size_mib} MiB file, page cache dropped before each read)", rows))
    if "small" in r or "listing" in r:
        rows = []
        if "small" in r:
            s = r["small"]
            rows += [
                (f"Small files: rsync -a of {args.small_files} × 32 KiB into the mount", f"{s['rsync into mount']:.0f} files/s", ""),
                ("Small files: the same into a local directory", f"{s['rsync into local dir']:.0f} files/s", ""),
            ]
        if "listing" in r:
            l = r["listing"]
            rows += [
                (f"Listing: API paging of {args.list_files} files (curl)", f"{l['API paging (curl)']:.2f} s", ""),
                ("Listing: ls -l cold", f"{l['ls -l cold']:.2f} s", f"≤ {2 * l['API paging (curl)']:.2f} s (2 × API)"),
                ("Listing: ls -l warm", f"{l['ls -l warm']:.2f} s", "≤ 0.2 s"),
            ]
        out.append(("Metadata on loopback", rows))
    if "memory" in r or "inodes" in r or "write" in r:
        rows = []
        if "memory" in r:
            m = r["memory"]
            many = f"{args.writers} writers"
            rows += [
                ("Mount peak RSS, 1 writer", mib(m["1 writer"][0]), "≤ 64 MiB"),
                (f"Mount peak RSS, {args.writers} writers at once ({m['part'] // MiB} MiB each)", mib(m[many][0])
                 + (f" ({m['writers failed']} cp failed)" if m["writers failed"] else ""), "≤ 64 MiB"),
                ("Server peak RSS, 1 writer", mib(m["1 writer"][1]), "≤ 64 MiB"),
                (f"Server peak RSS, {args.writers} writers at once", mib(m[many][1]), ""),
            ]
        if "write" in r:
            rows.append(("`rclone mount` (cache off) peak RSS, 1 writer", mib(r["write"]["rclone peak RSS"]), ""))
        if "inodes" in r:
            i = r["inodes"]
            rows += [
                (f"{args.inode_files} files: set-up through the API ({args.inode_folders} folders, "
                 f"{args.setup_threads} threads)", f"{i['setup']:.0f} s ({args.inode_files / i['setup']:.0f} files/s)", ""),
                (f"{args.inode_files} files: find + stat through the mount", f"{i['walk']:.1f} s", ""),
                ("Mount RSS idle (mounted, root listed)", mib(i["idle"]), ""),
                ("Mount peak RSS during find + stat", mib(i["peak"]), "≤ 96 MiB"),
                ("Mount RSS after `echo 2 > /proc/sys/vm/drop_caches` (FORGETs)", mib(i["after"]),
                 f"≤ {mib(i['idle'] + 16 * MiB)} (idle + 16 MiB)"),
            ]
        out.append(("Memory", rows))
    if "wan" in r:
        out.append((f"Wide-area link (mediafs-faultproxy: RTT {args.wan_rtt_ms:g} ms, {args.wan_up_mbit:g} Mbit/s up, "
                     f"{args.wan_down_mbit:g} Mbit/s down; once each)", wan_rows(args, r["wan"])))
    return out


def wan_rows(args, w):
    count, size = args.wan_files, args.wan_size_mib * MiB
    up, down = args.wan_up_mbit * 1e6 / 8, args.wan_down_mbit * 1e6 / 8
    rows = []

    def rsync(label, value, returns_target, stored_target):
        if value == NA_FLAG or value is None:
            rows.append((f"{label}: rsync returns", value or "n/a", returns_target))
            rows.append((f"{label}: all stored", value or "n/a", stored_target))
            return
        returned, stored = value
        rows.append((f"{label}: rsync returns", f"{returned:.1f} s ({count / returned:.0f} files/s)", returns_target))
        rows.append((f"{label}: all stored", "timeout" if stored is None else f"{stored:.1f} s ({count / stored:.0f} files/s)",
                     stored_target))

    m, c = w["mediafs"], w["rclone"]
    title = f"rsync -a of {count} × 32 KiB"
    rsync(f"mediafs {title}, default mode", m.get("rsync default"), "≥ 8 files/s", "")
    rsync(f"mediafs {title}, `--write-back --transfers {args.transfers}`", m.get("rsync write-back"),
          "≥ 200 files/s", "≥ 60 files/s")
    rsync(f"rclone {title} (`--vfs-cache-mode writes`)", c.get("rsync"), "", "")

    def cp(label, value, target):
        if value is None:
            rows.append((label, "n/a", target))
            return
        returned, stored = value
        if stored is None:
            rows.append((label, f"cp returns in {returned:.1f} s; not stored before the timeout", target))
            return
        rate = size / stored
        rows.append((label, f"{rate / MiB:.1f} MiB/s, {100 * rate / up:.0f} % of the link (cp returns in {returned:.1f} s, "
                            f"stored after {stored:.1f} s)", target))

    if w.get("curl"):
        up_seconds, down_seconds = w["curl"]
        rows.append((f"Ceiling: curl PUT of {args.wan_size_mib} MiB (simple upload)",
                     f"{size / up_seconds / MiB:.1f} MiB/s, {100 * size / up_seconds / up:.0f} % of the link", ""))
        rows.append((f"Ceiling: curl GET of {args.wan_size_mib} MiB (page cache dropped)",
                     f"{size / down_seconds / MiB:.1f} MiB/s, {100 * size / down_seconds / down:.0f} % of the link", ""))
    cp(f"mediafs cp of {args.wan_size_mib} MiB (until stored)", m.get("cp"), "≥ 90 % of the link")
    cp(f"rclone cp of {args.wan_size_mib} MiB (until stored)", c.get("cp"), "")

    def cat(label, seconds, target):
        if seconds is None:
            rows.append((label, "n/a", target))
            return
        rate = size / seconds
        rows.append((label, f"{rate / MiB:.1f} MiB/s, {100 * rate / down:.0f} % of the link", target))

    cat(f"mediafs cat of {args.wan_size_mib} MiB (fresh mount, page cache dropped)", m.get("cat"), "≥ 90 % of the link")
    cat(f"rclone cat of {args.wan_size_mib} MiB (fresh mount, page cache dropped)", c.get("cat"), "")
    return rows


def render(args, r, failures):
    text = ["# mediafs benchmark results", "",
            f"Machine: {machine()}. Release build; loopback figures against the embedded Media Manager are the median "
            f"of {args.runs} runs; tus chunks 8 MiB; rclone {rclone_version()}.", ""]
    for title, rows in tables(args, r):
        text += [f"## {title}", "", "| Measure | Result | Target |", "|---|---|---|"]
        text += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        text.append("")
    if failures:
        text += ["Sections that failed: " + ", ".join(f"{name} ({error})" for name, error in failures), ""]
    text += [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make bench`"
             + (f" (sections: {', '.join(args.sections)})" if args.sections != SECTIONS else "") + ".", ""]
    return "\n".join(text)


def rclone_version():
    try:
        return subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout.split()[1]
    except (OSError, IndexError):
        return "missing"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated, of: " + ", ".join(SECTIONS))
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the large file (MiB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--list-files", type=int, default=10000)
    parser.add_argument("--writers", type=int, default=16, help="concurrent writers in the memory section")
    parser.add_argument("--inode-files", type=int, default=100_000)
    parser.add_argument("--inode-folders", type=int, default=100)
    parser.add_argument("--setup-threads", type=int, default=16)
    parser.add_argument("--wan-files", type=int, default=200)
    parser.add_argument("--wan-size-mib", type=int, default=256)
    parser.add_argument("--wan-rtt-ms", type=float, default=40)
    parser.add_argument("--wan-up-mbit", type=float, default=100)
    parser.add_argument("--wan-down-mbit", type=float, default=200)
    parser.add_argument("--wan-timeout", type=float, default=300, help="seconds to wait for files to be stored")
    parser.add_argument("--transfers", type=int, default=8, help="--transfers of the --write-back mount (the mount's default)")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "results.md"))
    args = parser.parse_args()
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        sys.exit(f"unknown sections: {', '.join(sorted(unknown))} (known: {', '.join(SECTIONS)})")
    for binary in (BIN, PROXY_BIN):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run `swift build -c release` (make bench does)")
    if {"write", "read", "wan"} & set(args.sections) and shutil.which("rclone") is None:
        sys.exit("rclone is missing: bench/run.sh installs it (apt-get install rclone)")

    print(f"benchmarking on {machine()}: {', '.join(args.sections)}", flush=True)
    results, failures = {}, []
    bench = Bench(args)
    try:
        for name in SECTIONS:
            if name not in args.sections:
                continue
            started = time.perf_counter()
            try:
                results[name] = getattr(bench, name)()
                print(f"{name} ({time.perf_counter() - started:.0f} s):", results[name], flush=True)
            except Exception as error:
                traceback.print_exc()
                failures.append((name, f"{type(error).__name__}: {error}"))
                bench.mount.stop()
    finally:
        bench.close()

    text = render(args, results, failures)
    with open(args.output, "w") as f:
        f.write(text)
    print()
    print(text)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
