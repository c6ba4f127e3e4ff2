#!/usr/bin/env python3
"""make bench: yubin's throughput and per-message costs on this machine.

Phases, each in a fresh temporary single-user instance (removed afterwards):
  driver      the injection loop itself, running /bin/true instead of sendmail
  inject      N messages of 4 KiB through DIR/bin/sendmail at concurrency C
              while yubin-start is not running (they stay in the queue)
  deliver     yubin-start started on that full queue, until all N are in
              u's Maildir/new and the queue is empty
  end-to-end  yubin-start running; from the first injection to the last
              message in the Maildir
  costs       100 messages end to end under strace -f: program starts
              (execve), forks, fsyncs and renames per message, for the
              injecting side and the delivering side
  program runs  /bin/true, queue-inject, sendmail, local-deliver 100 times
              each, one after the other: wall, cpu and page faults per run
  postfix     (optional) the same through Postfix run from build/postfix
              with its own configuration; see postfix.py

Environment: BUILD (build directory, default build), BENCH_MESSAGES (10000),
BENCH_CONCURRENCY (8), BENCH_TIMEOUT (seconds per phase, 600),
BENCH_POSTFIX (auto: run Postfix if it can be set up; 0: skip; 1: required),
BENCH_POSTFIX_MESSAGES (2000), BENCH_KEEP=1 keeps the temporary directories.
Only processes this script started are stopped, by their process group."""
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import (BUILD, CONC, COST_N, DRIVER_N, HERE, HOST, MSG_SIZE, N, PF_N, PHASE_TIMEOUT, TRACED,
                      BenchError, DirWatch, Meter, end_group, error_lines, injection_failures, per_message,
                      parse_strace_ff, pids_of, spawn, start_injection, verify_maildir, wait_bounded,
                      wait_delivered, wait_until, write_messages)


class Yubin:
    """A temporary single-user instance with the virtual user u."""

    def __init__(self, tmp, name):
        self.dir = os.path.join(tmp, name)
        self.proc = None
        self.logpath = os.path.join(tmp, name + ".log")
        subprocess.run([os.path.join(BUILD, "bin", "yubin-setup"), "--single-user", self.dir,
                        "--hostname", HOST], check=True, stdout=subprocess.DEVNULL, timeout=30)
        subprocess.run([self.bin("yubin-user"), "add", "u"], input=b"bench-password\n", check=True,
                       timeout=30)
        with open(os.path.join(self.dir, "control", "concurrencylocal"), "w") as f:
            f.write("10\n")
        self.maildir_new = os.path.join(self.dir, "home", "u", "Maildir", "new")
        if not os.path.isdir(self.maildir_new):
            raise BenchError("yubin-user did not create " + self.maildir_new)

    def bin(self, name):
        return os.path.join(self.dir, "bin", name)

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def start(self, wrap=()):
        self.logf = open(self.logpath, "ab")
        self.proc = spawn(list(wrap) + [self.bin("yubin-start")], stdout=self.logf, stderr=self.logf)
        end = time.monotonic() + 20
        while "queue-manager: event=start" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise BenchError("yubin-start did not start: " + self.log()[-1500:])
            time.sleep(0.002)

    def dead(self):
        """Why the instance is not running, or None."""
        if self.proc is not None and self.proc.poll() is not None:
            return "yubin-start exited: " + self.log()[-1500:]
        return None

    def queue_count(self):
        q = os.path.join(self.dir, "queue")
        return sum(len(os.listdir(os.path.join(q, d))) for d in ("new", "cur"))

    def stop(self, timeout=30):
        """SIGTERM to yubin-start (the traced one when under strace), bounded
        wait, then SIGKILL to whatever is left in its process group."""
        if self.proc is None:
            return
        for pid in pids_of(self.bin("yubin-start")) or [self.proc.pid]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if wait_bounded(self.proc, timeout) is None:
            print("  (yubin-start did not stop within %ds: killed)" % timeout)
        end_group(self.proc)
        self.proc = None
        self.logf.close()

    def resident(self):
        """{program: (cpu seconds, page faults)} of the long-running programs."""
        out = {}
        for prog in ("queue-manager", "local-spawn", "remote-spawn", "yubin-start"):
            for pid in pids_of(self.bin(prog)):
                st = benchlib.proc_stat(pid)
                if st:
                    c, f = out.get(prog, (0, 0))
                    out[prog] = (c + st[0], f + st[1])
        return out

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def run_driver(tmp, msgdir, results):
    n = DRIVER_N
    m = Meter(tmp)
    procs = start_injection("/bin/true", msgdir, n, CONC, subprocess.DEVNULL)
    injection_failures(procs, time.monotonic() + PHASE_TIMEOUT)
    m.stop()
    cpu = m.children_cpu()
    results["driver"] = n / m.wall
    print("driver: the same loop running /bin/true: %d runs in %.2f s = %.0f/s "
          "(%.0f us wall per message at concurrency %d, %.2f ms cpu each)"
          % (n, m.wall, n / m.wall, 1e6 * m.wall / n, CONC, 1000 * cpu / n), flush=True)


def run_yubin(tmp, msgdir, results):
    errlog = open(os.path.join(tmp, "inject-errors.log"), "ab")

    # inject with nothing running
    y = Yubin(tmp, "yubin-1")
    m = Meter(tmp)
    procs = start_injection(y.bin("sendmail"), msgdir, N, CONC, errlog)
    failed = injection_failures(procs, time.monotonic() + PHASE_TIMEOUT)
    m.stop()
    if failed:
        raise BenchError("%d sendmail calls failed: %s" % (failed, error_lines(errlog.name)))
    if y.queue_count() != N:
        raise BenchError("%d files in the queue after injecting %d" % (y.queue_count(), N))
    results["inject"] = N / m.wall
    print("inject: %d messages in %.2f s = %.0f msg/s" % (N, m.wall, N / m.wall))
    print("  %s" % m.describe(N, m.children_cpu()), flush=True)

    # deliver the full queue
    watch = DirWatch(y.maildir_new)
    m = Meter(tmp)
    y.start()
    deadline = time.monotonic() + PHASE_TIMEOUT
    t_last = wait_delivered(watch, N, deadline, y.dead)
    t_empty = wait_until(lambda: y.queue_count() == 0, deadline, "the queue to empty")
    m.stop(t_empty)
    resident = y.resident()
    y.stop()
    watch.close()
    verify_maildir(y.maildir_new, msgdir, N)
    results["deliver"] = N / m.wall
    print("deliver: %d messages in %.2f s = %.0f msg/s (last one in the Maildir at %.2f s, "
          "queue empty at %.2f s)" % (N, m.wall, N / m.wall, t_last - m.t0, t_empty - m.t0))
    cpu = m.children_cpu()
    print("  %s" % m.describe(N, cpu))
    res_cpu = sum(c for c, _f in resident.values())
    print("  cpu/msg by program: %s; local-deliver (fork, exec, delivery) %.2f ms"
          % (", ".join("%s %.2f ms (%.1f page faults)" % (p, 1000 * c / N, f / N) for p, (c, f) in resident.items()),
             1000 * (cpu - res_cpu) / N))
    print("  verified: every message once, bodies byte for byte", flush=True)
    y.remove()

    # end to end: yubin-start running while the messages come in
    y = Yubin(tmp, "yubin-2")
    y.start()
    watch = DirWatch(y.maildir_new)
    m = Meter(tmp)
    procs = start_injection(y.bin("sendmail"), msgdir, N, CONC, errlog)
    inject_end = []
    deadline = time.monotonic() + PHASE_TIMEOUT
    t_last = wait_delivered(watch, N, deadline, y.dead, procs, inject_end)
    m.stop(t_last)
    failed = injection_failures(procs, deadline)
    t_empty = wait_until(lambda: y.queue_count() == 0, deadline, "the queue to empty")
    y.stop()
    watch.close()
    if failed:
        raise BenchError("%d sendmail calls failed: %s" % (failed, error_lines(errlog.name)))
    verify_maildir(y.maildir_new, msgdir, N)
    results["e2e"] = N / m.wall
    results["e2e_inject"] = N / (inject_end[0] - m.t0)
    print("end-to-end: %d messages in %.2f s = %.0f msg/s (injection done at %.2f s = %.0f msg/s; "
          "queue empty at %.2f s)" % (N, m.wall, N / m.wall, inject_end[0] - m.t0, results["e2e_inject"],
                                     t_empty - m.t0))
    print("  %s" % m.describe(N, m.children_cpu()))
    print("  verified: every message once, bodies byte for byte", flush=True)
    y.remove()


def run_costs(tmp, msgdir, results):
    if not shutil.which("strace"):
        print("per message: skipped (strace is not installed)")
        return
    y = Yubin(tmp, "yubin-3")
    sd = os.path.join(tmp, "strace")
    os.makedirs(sd)
    strace = ["strace", "-qq", "-ff", "-e", "trace=" + TRACED, "-o"]
    y.start(wrap=strace + [os.path.join(sd, "deliver")])
    watch = DirWatch(y.maildir_new)
    errlog = open(os.path.join(tmp, "inject-errors.log"), "ab")
    procs = start_injection(y.bin("sendmail"), msgdir, COST_N, 1, errlog, wrap=strace + [os.path.join(sd, "inject")])
    deadline = time.monotonic() + 60
    wait_delivered(watch, COST_N, deadline, y.dead, procs)
    failed = injection_failures(procs, deadline)
    wait_until(lambda: y.queue_count() == 0, deadline, "the queue to empty")
    y.stop()
    watch.close()
    if failed:
        raise BenchError("%d sendmail calls failed under strace" % failed)
    inj = parse_strace_ff(os.path.join(sd, "inject"))
    dlv = parse_strace_ff(os.path.join(sd, "deliver"))
    # The shell loop stands for the caller: its own fork per message is not yubin's.
    i, idet = per_message(inj, COST_N, sorted(p for p in inj if p not in ("sh", "dash", "?")))
    once = ("yubin-start", "queue-manager", "local-spawn", "remote-spawn")
    d, ddet = per_message(dlv, COST_N, sorted(dlv), once=once)
    results.update(inj_exec=i["execve"], inj_fsync=i["fsync"], dlv_exec=d["execve"], dlv_fsync=d["fsync"])
    print("costs: %d messages end to end under strace -f (yubin-start and the injecting side traced):"
          % COST_N)
    print("per message (injection): %.2f program starts (execve), %.2f fsyncs  [forks %.2f, renames %.2f]"
          % (i["execve"], i["fsync"], i["fork"], i["rename"]))
    print("    %s" % idet)
    print("per message (delivery):  %.2f program starts (execve), %.2f fsyncs  [forks %.2f, renames %.2f]"
          % (d["execve"], d["fsync"], d["fork"], d["rename"]))
    print("    %s  (execve of %s at start not counted)" % (ddet, ", ".join(once)), flush=True)
    y.remove()
    shutil.rmtree(sd, ignore_errors=True)


def run_starts(tmp, msgdir, results, runs=100):
    """What one run of each per-message program costs, one after the other."""
    y = Yubin(tmp, "yubin-4")
    env = os.path.join(tmp, "envelope")
    with open(env, "wb") as f:
        f.write(b"Fsender@bench.example\0Tu@bench.example\0\0")
    msg = os.path.join(msgdir, "0")
    home = os.path.join(y.dir, "home", "u")
    cases = [("/bin/true", ["/bin/true"], {}),
             ("queue-inject", [y.bin("queue-inject")], {"stdout": env}),
             ("sendmail (with its queue-inject)", [y.bin("sendmail"), "-oi", "u@bench.example"], {}),
             ("local-deliver", [y.bin("local-deliver"), "u", home, "u", "", "", HOST, "sender@bench.example",
                                "./Maildir/"], {"cwd": home})]
    print("program runs, %d of each one after the other (cpu and page faults from getrusage):" % runs)
    for label, cmd, kw in cases:
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        for _ in range(runs):
            with open(msg, "rb") as i:
                out = open(kw["stdout"], "rb") if "stdout" in kw else subprocess.DEVNULL
                r = subprocess.run(cmd, stdin=i, stdout=out, stderr=subprocess.DEVNULL, cwd=kw.get("cwd"))
                if out is not subprocess.DEVNULL:
                    out.close()
            if r.returncode != 0:
                raise BenchError("%s exited %d" % (label, r.returncode))
        wall = time.monotonic() - t0
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru.ru_utime - ru0.ru_utime) + (ru.ru_stime - ru0.ru_stime)
        faults = ru.ru_minflt - ru0.ru_minflt
        results["start_" + label.split()[0]] = 1000 * cpu / runs
        print("  %-34s %6.2f ms wall, %6.2f ms cpu, %5.0f page faults per run"
              % (label, 1000 * wall / runs, 1000 * cpu / runs, faults / runs), flush=True)
    y.remove()


def summary(results):
    print()
    print("summary: %d messages of %d bytes, %d concurrent sendmail callers, concurrencylocal 10"
          % (N, MSG_SIZE, CONC))
    print("  %-30s %9s %9s %7s" % ("msg/s", "yubin", "postfix", "ratio"))
    if PF_N != N and "pf_e2e" in results:
        print("  %-30s %9d %9d" % ("(messages)", N, PF_N))
    for label, k in (("inject (nothing delivering)", "inject"), ("deliver (full queue)", "deliver"),
                     ("end-to-end", "e2e"), ("  its injection alone", "e2e_inject")):
        y, p = results.get(k), results.get("pf_" + k)
        print("  %-30s %9s %9s %7s" % (label, "%.0f" % y if y else "-", "%.0f" % p if p else "-",
                                       "%.2f" % (y / p) if y and p else "-"))
    print("  %-30s %9.0f" % ("driver alone (/bin/true)", results["driver"]))
    for side, k in (("injection", "inj"), ("delivery", "dlv")):
        if k + "_exec" in results:
            pf = ""
            if "pf_" + k + "_exec" in results:
                pf = "   postfix: %.2f, %.2f" % (results["pf_" + k + "_exec"], results["pf_" + k + "_fsync"])
            print("  per message, %-9s        execs %.2f, fsyncs %.2f%s"
                  % (side, results[k + "_exec"], results[k + "_fsync"], pf))


def main():
    for prog in ("yubin-setup", "yubin-user", "sendmail", "yubin-start"):
        if not os.access(os.path.join(BUILD, "bin", prog), os.X_OK):
            raise BenchError("%s/bin/%s is missing: run make first" % (BUILD, prog))
    tmp = tempfile.mkdtemp(prefix="yubin-bench.")
    benchlib.tempdirs.append(tmp)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print("bench: %d messages of %d bytes, concurrency %d; %d cpus, load average %s; files in %s"
          % (N, MSG_SIZE, CONC, os.cpu_count(), load, tmp), flush=True)
    msgdir = os.path.join(tmp, "messages")
    write_messages(msgdir, N)
    results = {}
    run_driver(tmp, msgdir, results)
    run_yubin(tmp, msgdir, results)
    run_costs(tmp, msgdir, results)
    run_starts(tmp, msgdir, results)

    want = os.environ.get("BENCH_POSTFIX", "auto")
    if want != "0":
        sys.path.insert(0, HERE)
        import postfix
        try:
            results.update(postfix.run(tmp, msgdir))
        except postfix.Unavailable as e:
            print("postfix: skipped: %s" % e, flush=True)
            if want == "1":
                raise BenchError("postfix: %s" % e)
    summary(results)
    return 0


if __name__ == "__main__":
    benchlib.run_main(main, "bench")
