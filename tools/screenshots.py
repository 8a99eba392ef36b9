"""Take the screenshots of examples/topcat.md and examples/aladin.md from the programs.

    vo-clip serve &                      # the demo archive, on http://127.0.0.1:8000
    python tools/screenshots.py          # writes docs/screenshots/*.png
    python tools/screenshots.py --only aladin --url http://127.0.0.1:8765

TOPCAT and Aladin desktop run under a private Xvfb display with the openbox window
manager, driven by xdotool (TOPCAT: clicks and typing in its TAP, plot, activation
and DataLink windows) and over SAMP (Aladin: examples/samp_send.py and Aladin's
``script.aladin.send`` commands); each window is captured with ImageMagick ``import``
and quantised to stay under ~200 KB. Nothing here is mocked: every PNG is what the
program drew.

Needs (Debian): ``apt-get install topcat aladin xvfb openbox xdotool x11-utils
imagemagick``, and pyvo. The click positions are those of TOPCAT 4.8.7 and Aladin 12.0
(Debian bookworm) with their default look and feel on a 1440x900 screen; another
version may need them adjusted (on an error the logs and raw captures are kept until
you press Enter). Both programs run with a private Java user.home, so your own settings,
SAMP hub and history are neither used nor changed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCREEN = (1440, 900)
MAX_BYTES = 200_000

QUERY_TEXT = "planetary nebula with a bright central star"
ADQL = f"""SELECT TOP 200 obs_id, vo_clip_similarity('{QUERY_TEXT}') AS similarity,
       target_name, instrument_name, s_ra, s_dec, s_region,
       obs_publisher_did, access_url, access_format
FROM ivoa.ObsCore
ORDER BY similarity DESC"""
#: Aladin: a star-forming region mosaic of the demo archive (proposal 1438, 45 pointings).
SKY_TEXT = "star-forming region with dark dust lanes"
FITS_OBS = "hst_01438_34_wfpc_wf_f785lp_w13y34"
FITS_CONE = ("83.9017103", "-5.5369465", "0.1")


class Display:
    """A private X display with a window manager, and the xdotool/import helpers."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.number = next(n for n in range(97, 200)
                           if not Path(f"/tmp/.X11-unix/X{n}").exists())
        self.env = {**os.environ, "DISPLAY": f":{self.number}"}
        self.processes: list[subprocess.Popen] = []
        self.start(["Xvfb", f":{self.number}", "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
                    "-nolisten", "tcp"], name="xvfb")
        deadline = time.time() + 20
        while not Path(f"/tmp/.X11-unix/X{self.number}").exists():
            if time.time() > deadline:
                raise RuntimeError("Xvfb did not start")
            time.sleep(0.2)
        self.start(["openbox"], name="openbox")
        time.sleep(1)

    def start(self, command: list[str], name: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")
        process = subprocess.Popen(command, env={**self.env, **(env or {})}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        """End a program we started, and its children (Aladin ignores SIGTERM)."""
        if process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=8)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)

    def xdotool(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["xdotool", *args], env=self.env, capture_output=True,
                                text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"xdotool {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout.strip()

    def windows(self, name: str) -> list[str]:
        return self.xdotool("search", "--onlyvisible", "--name", name, check=False).split()

    def wait_window(self, name: str, timeout: float = 60) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.windows(name)
            if found:
                time.sleep(1)  # let it finish drawing
                return found[-1]
            time.sleep(0.5)
        raise RuntimeError(f"no window named {name!r} after {timeout} s")

    def place(self, window: str, x: int, y: int, width: int | None = None,
              height: int | None = None) -> None:
        self.xdotool("windowactivate", "--sync", window, check=False)
        self.xdotool("windowmove", window, str(x), str(y))
        if width:
            self.xdotool("windowsize", window, str(width), str(height))
        time.sleep(1.5)

    def raise_(self, window: str) -> None:
        self.xdotool("windowactivate", "--sync", window, check=False)
        time.sleep(0.8)

    def click(self, x: int, y: int, pause: float = 1.0) -> None:
        self.xdotool("mousemove", str(x), str(y), "click", "1")
        time.sleep(pause)

    def drag(self, start: tuple[int, int], end: tuple[int, int], pause: float = 1.0) -> None:
        middle = ((start[0] + end[0]) // 2, (start[1] + end[1]) // 2)
        self.xdotool("mousemove", *map(str, start), "mousedown", "1",
                     "mousemove", *map(str, middle), "mousemove", *map(str, end), "mouseup", "1")
        time.sleep(pause)

    def type(self, text: str) -> None:
        self.xdotool("type", "--delay", "8", text)
        time.sleep(0.5)

    def key(self, *keys: str) -> None:
        self.xdotool("key", *keys)
        time.sleep(0.5)

    def frame(self, window: str) -> str:
        """The window manager's frame around ``window`` (title bar included)."""
        tree = subprocess.run(["xwininfo", "-id", window, "-tree"], env=self.env,
                              capture_output=True, text=True).stdout
        match = re.search(r"Parent window id: (0x[0-9a-f]+)", tree)
        return match.group(1) if match and "(the root window)" not in match.group(0) else window

    def geometry(self, window: str) -> str:
        """``WxH+X+Y`` of ``window`` on the screen."""
        info = subprocess.run(["xwininfo", "-id", window], env=self.env, capture_output=True,
                              text=True).stdout
        value = {key: int(re.search(rf"{key}:\s+(-?\d+)", info).group(1))
                 for key in ("Absolute upper-left X", "Absolute upper-left Y", "Width",
                             "Height")}
        return (f"{value['Width']}x{value['Height']}+{max(0, value['Absolute upper-left X'])}"
                f"+{max(0, value['Absolute upper-left Y'])}")

    def shot(self, window: str, path: Path, raise_window: bool = True) -> None:
        """Capture ``window`` with its frame (and any menu open over it: the screen is
        captured, then cropped), then quantise it under MAX_BYTES."""
        if raise_window:
            self.raise_(window)
        raw = self.workdir / (path.stem + "-raw.png")
        subprocess.run(["import", "-window", "root", "-crop",
                        self.geometry(self.frame(window)), "+repage", str(raw)],
                       env=self.env, check=True, timeout=60)
        for colors in (128, 64, 32):
            subprocess.run(["convert", str(raw), "+dither", "-colors", str(colors),
                            "-define", "png:compression-level=9", f"PNG8:{path}"], check=True)
            if path.stat().st_size <= MAX_BYTES:
                break
        print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
              f" ({path.stat().st_size // 1000} kB)")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# -- TOPCAT ----------------------------------------------------------------------------

def topcat(x: Display, base: str, out: Path, home: Path) -> None:
    tap = base + "/tap"
    x.start(["topcat", f"-Duser.home={home}", "-Xmx2g"], name="topcat")
    main = x.wait_window("^TOPCAT$", timeout=90)
    x.place(main, 500, 0)

    # File > TAP query (the toolbar's "SELECT FROM" button); the registry is not reachable
    # offline, so TOPCAT reports a search error first: dismiss it.
    x.click(1151, 59, pause=3)
    dialog = x.wait_window("Table Access Protocol")
    deadline = time.time() + 20
    while time.time() < deadline:
        errors = x.windows("Service search error")
        if errors:
            x.raise_(errors[0])
            x.key("space")
            break
        time.sleep(0.5)
    x.place(dialog, 0, 0, 1100, 860)
    x.click(570, 778)                                     # the TAP URL field
    x.type(tap)
    x.shot(dialog, out / "topcat-1-tap-url.png")
    x.click(1019, 808, pause=8)                           # Use Service
    x.click(122, 370, pause=2)                            # ivoa.ObsCore in the tree
    x.click(581, 144, pause=2)                            # Columns tab
    x.shot(dialog, out / "topcat-2-tables.png")
    x.click(327, 144, pause=2)                            # Service tab
    x.drag((700, 502), (700, 760))                        # more room for the metadata
    x.xdotool("mousemove", "680", "350")
    for _ in range(15):                                   # scroll to User-Defined Functions
        x.xdotool("click", "5")
    time.sleep(1)
    x.shot(dialog, out / "topcat-3-functions.png")
    x.drag((700, 634), (700, 470))                        # give the room back to the ADQL
    x.click(68, 810, pause=1.5)                           # Examples
    x.xdotool("mousemove", "83", "830")                   # > Service-Provided
    time.sleep(1.5)
    x.shot(dialog, out / "topcat-4-examples.png", raise_window=False)
    x.xdotool("mousemove", "200", "830")
    x.click(306, 736, pause=1.5)                          # the first example
    x.click(500, 680)                                     # the ADQL text
    x.key("ctrl+a", "BackSpace")
    x.type(ADQL)
    x.shot(dialog, out / "topcat-5-query.png")
    x.click(555, 850, pause=8)                            # Run Query

    main = x.wait_window("^TOPCAT$")
    x.place(main, 500, 0)
    x.click(661, 59, pause=3)                             # Table Browser
    browser = x.wait_window("Table Browser")
    x.place(browser, 0, 0, 1400, 520)
    x.shot(browser, out / "topcat-6-results.png")

    x.raise_(main)
    x.click(961, 59, pause=5)                             # Sky Plot
    plot = x.wait_window("Sky Plot")
    x.place(plot, 0, 0, 1000, 760)
    x.click(58, 594, pause=1.5)                           # Axes
    x.click(414, 570, pause=3)                            # projection: sin -> aitoff
    x.shot(plot, out / "topcat-7-sky.png")

    if http_status(f"{base}/datalink/links?ID=none") == 404:
        print("  DataLink is not served yet: no DataLink screenshots")
        return
    x.raise_(browser)
    x.click(150, 133, pause=2)                            # row 1 becomes the current row
    x.raise_(main)
    x.click(842, 59, pause=3)                             # Activation Actions
    activation = x.wait_window("Activation Actions")
    x.place(activation, 0, 0, 1100, 700)
    x.click(102, 160, pause=1.5)                          # Invoke Service
    x.click(41, 160, pause=1)                             # ... switched on
    x.shot(activation, out / "topcat-8-activation.png")
    x.click(266, 407, pause=6)                            # Invoke now on row 1
    datalink = x.xdotool("getactivewindow")               # the DataLink window (untitled)
    if datalink == activation:
        raise RuntimeError("TOPCAT opened no DataLink window")
    x.place(datalink, 0, 0, 1200, 640)
    x.shot(datalink, out / "topcat-9-datalink.png")
    x.click(69, 113, pause=2)                             # the "similar" #proc row
    x.click(577, 363, pause=1.5)                          # Action: Report URL -> Load Table
    x.click(527, 418, pause=1.5)
    x.shot(datalink, out / "topcat-10-similar.png")
    x.click(1148, 363, pause=5)                           # Invoke: loads table 2
    x.shot(x.wait_window("^TOPCAT$"), out / "topcat-11-similar-loaded.png")


# -- Aladin ----------------------------------------------------------------------------

def samp(home: Path, mtype: str, params: dict, timeout: int = 60) -> dict:
    """Send one message to Aladin through the hub whose lockfile is in ``home``."""
    from pyvo.samp import SAMPHubError, SAMPIntegratedClient, SAMPProxyError
    from pyvo.samp.lockfile_helpers import read_lockfile

    client = SAMPIntegratedClient(name="vo_clip screenshots", callable=False)
    try:
        client.connect(hub_params=read_lockfile(str(home / ".samp")))
    except (SAMPHubError, OSError) as error:
        raise RuntimeError(f"no SAMP hub in {home}: {error}") from None
    try:
        ids = [cid for cid in client.get_subscribed_clients(mtype)
               if client.get_metadata(cid).get("samp.name") == "Aladin"]
        if not ids:
            raise RuntimeError(f"Aladin does not take {mtype} (yet)")
        return client.call_and_wait(ids[0], {"samp.mtype": mtype, "samp.params": params},
                                    str(timeout))
    except SAMPProxyError as error:
        raise RuntimeError(f"SAMP {mtype} to Aladin: {error}") from None
    finally:
        client.disconnect()


def aladin_ready(home: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (home / ".samp").exists():
            try:
                samp(home, "script.aladin.send", {"script": "info ready"}, timeout=10)
                return
            except RuntimeError:
                pass
        time.sleep(1)
    raise RuntimeError("Aladin did not register with its SAMP hub")


def samp_send(home: Path, tap: str, *args: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "samp_send.py"), *args,
                             "--url", tap, "--to", "Aladin", "--timeout", "5"],
                            env={**os.environ, "HOME": str(home)}, capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"samp_send.py failed: {result.stderr.strip()}")


def aladin(x: Display, base: str, out: Path, home: Path, jar: str) -> None:
    tap = base + "/tap"
    x.start(["java", f"-Duser.home={home}", "-Xmx1024m", "-jar", jar, "-local",
             "-noreleasetest", "-nolog", "-location=0,0,1400,860"], name="aladin")
    window = x.wait_window("^Aladin v", timeout=90)
    aladin_ready(home)
    time.sleep(3)
    samp_send(home, tap, SKY_TEXT, "--top", "200")
    samp(home, "script.aladin.send", {"script": "grid on"})
    time.sleep(3)
    x.shot(window, out / "aladin-1-positions.png")

    product = f"{base}/products/{FITS_OBS}.fits"
    if http_status(product) == 404:
        print("  FITS products are not served yet: no FITS screenshots")
        return
    # Offline (-local) Aladin cannot open http URLs itself (it resolves them through its
    # online GLU dictionary), so the product is fetched here and loaded from disk.
    local = home / f"{FITS_OBS}.fits"
    urllib.request.urlretrieve(product, local)
    samp(home, "script.aladin.send", {"script": f"load {local}"})
    time.sleep(4)
    samp_send(home, tap, SKY_TEXT, "--cone", *FITS_CONE, "--top", "100")
    time.sleep(3)
    x.shot(window, out / "aladin-2-fits-overlay.png")
    x.drag((300, 150), (1150, 760), pause=3)              # select every source in view
    x.shot(window, out / "aladin-3-measurements.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="the running vo-clip serve (default http://127.0.0.1:8000)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", choices=["topcat", "aladin"])
    parser.add_argument("--aladin-jar", default=os.environ.get(
        "ALADIN_JAR", "/usr/share/java/aladin.jar"))
    args = parser.parse_args(argv)
    base = args.url.rstrip("/").removesuffix("/tap")

    missing = [tool for tool in ("Xvfb", "openbox", "xdotool", "xwininfo", "import", "convert",
                                 "java", "topcat") if shutil.which(tool) is None]
    if missing:
        print(f"screenshots: error: missing {', '.join(missing)} (apt-get install topcat "
              "aladin xvfb openbox xdotool x11-utils imagemagick)", file=sys.stderr)
        return 1
    if http_status(base + "/tap/availability") != 200:
        print(f"screenshots: error: no vo_clip TAP service at {base}/tap "
              "(start one with `vo-clip serve`)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="vo_clip-shots-") as tmp:
        workdir = Path(tmp)
        x = Display(workdir)
        try:
            for name in ("topcat", "aladin"):
                if args.only not in (None, name):
                    continue
                print(f"{name}:")
                home = workdir / f"{name}-home"
                home.mkdir()
                try:
                    if name == "topcat":
                        topcat(x, base, args.out, home)
                    else:
                        aladin(x, base, args.out, home, args.aladin_jar)
                finally:
                    for process in x.processes[2:]:  # the program, not Xvfb and openbox
                        x.stop(process)
                    del x.processes[2:]
        except RuntimeError as error:
            print(f"screenshots: error: {error} (logs and raw captures in {workdir}, kept "
                  "until you press Enter)", file=sys.stderr)
            if sys.stdin.isatty():
                input()
            return 1
        finally:
            x.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
