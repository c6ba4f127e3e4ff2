"""pop3d with real mail clients (fetchmail, mpop, getmail6) against an
instance that received its mail through the real chain (sendmail,
queue-manager, local-deliver): each fetched message equals its Maildir
file, deletion removes exactly the fetched files, and the unique ids keep
a client from fetching a message twice."""
import os
import shutil
import subprocess
import tempfile

import harness
from pop3_helpers import PASSWORD, deliver, mail_set, maildir_files, wait_unlocked, with_pop3

BARE_CR = b"bare\rcr"


def need(program, package):
    if not shutil.which(program):
        raise AssertionError("%s is missing (make deps installs %s)" % (program, package))


def workdir():
    d = tempfile.mkdtemp(prefix="yubin-pop3-client.")
    os.chmod(d, 0o700)
    return d


def as_received(content):
    """The message as a client stores it: LF line ends, a final newline."""
    return content if content.endswith(b"\n") else content + b"\n"


def read_dir(d):
    return sorted(open(os.path.join(d, n), "rb").read() for n in os.listdir(d))


def write_private(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def run(argv, cwd, env=None, timeout=60, preexec_fn=None):
    r = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
                       preexec_fn=preexec_fn)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


@with_pop3()
def test_fetchmail_with_an_mda_keep_uidl_then_delete(inst, lst):
    need("fetchmail", "fetchmail")
    deliver(inst, mail_set())
    originals = maildir_files(inst)
    w = workdir()
    try:
        out = os.path.join(w, "out")
        os.mkdir(out)
        mda = os.path.join(w, "mda.sh")
        with open(mda, "w") as f:
            f.write('#!/bin/sh\nexec cat > "$(mktemp %s/msg.XXXXXX)"\n' % out)
        os.chmod(mda, 0o755)

        def rc(keep):
            # invisible: no Received: line of fetchmail's; sslproto "": no STLS attempt
            write_private(os.path.join(w, "rc"),
                          'set invisible\nset no bouncemail\n'
                          'poll 127.0.0.1 service %d protocol pop3 uidl auth password\n'
                          '    user "alice" there with password "%s" is "root" here\n'
                          '    options %s no rewrite stripcr sslproto ""\n    mda "%s"\n'
                          % (lst.port, PASSWORD, "keep" if keep else "no keep fetchall", mda))
        env = dict(os.environ, FETCHMAILHOME=w, HOME=w)
        argv = ["fetchmail", "-f", os.path.join(w, "rc"), "-i", os.path.join(w, "ids"), "--nodetach",
                "--pidfile", os.path.join(w, "pid")]   # as root, /var/run/fetchmail.pid would be shared
        rc(keep=True)
        code, text = run(argv, w, env)
        assert code == 0, text
        # stripcr: fetchmail drops every CR, a bare one too
        expected = sorted(as_received(c).replace(b"\r", b"") for _, c in originals.values())
        assert read_dir(out) == expected, text
        wait_unlocked(inst)
        assert maildir_files(inst).keys() == originals.keys()       # kept
        ids = open(os.path.join(w, "ids")).read()
        assert all(uid in ids for uid in originals), ids
        # again: the unique ids say every message was seen
        code, text = run(argv, w, env)
        assert code == 1 and "7 messages (7 seen)" in text, (code, text)   # 1: no new mail
        assert len(os.listdir(out)) == 7
        rc(keep=False)
        code, text = run(argv, w, env)
        assert code == 0, text
        wait_unlocked(inst)
        assert inst.count("alice") == 0
        assert len(os.listdir(out)) == 14
    finally:
        shutil.rmtree(w, ignore_errors=True)


@with_pop3()
def test_mpop_to_a_maildir_and_an_mbox_with_apop(inst, lst):
    need("mpop", "mpop")
    deliver(inst, mail_set())
    originals = maildir_files(inst)
    subprocess.run([inst.bin("yubin-user"), "apop", "alice", "on"], input=(PASSWORD + "\n").encode(), check=True)
    w = workdir()
    try:
        md = os.path.join(w, "Maildir")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(md, sub))
        mbox = os.path.join(w, "mbox")

        def rc(auth, delivery, keep):
            write_private(os.path.join(w, "rc"),
                          "defaults\ntls off\naccount test\nhost 127.0.0.1\nport %d\nuser alice\nauth %s\n"
                          "password %s\ndelivery %s\nkeep %s\nreceived_header off\nuidls_file %s\n"
                          % (lst.port, auth, PASSWORD, delivery, keep, os.path.join(w, "uidls")))
        argv = ["mpop", "-C", os.path.join(w, "rc"), "test"]
        rc("apop", "maildir " + md, "on")
        code, text = run(argv, w)
        assert code == 0, text
        assert read_dir(os.path.join(md, "new")) == sorted(as_received(c) for _, c in originals.values())
        assert "method=apop" in lst.read_log()
        wait_unlocked(inst)
        code, text = run(argv, w)                      # the unique ids: nothing new
        assert code == 0 and len(os.listdir(os.path.join(md, "new"))) == 7, text
        # into an mbox, with USER/PASS, deleting: a fresh uidls file fetches all again
        os.unlink(os.path.join(w, "uidls"))
        wait_unlocked(inst)
        rc("user", "mbox " + mbox, "off")
        code, text = run(argv, w)
        assert code == 0, text
        wait_unlocked(inst)
        assert inst.count("alice") == 0
        box = open(mbox, "rb").read()
        assert box.count(b"\nFrom ") + box.startswith(b"From ") == 7
        for c in originals.values():
            body = as_received(c[1]).split(b"\n\n", 1)[1]
            assert body.replace(b"\nFrom ", b"\n>From ") in box
    finally:
        shutil.rmtree(w, ignore_errors=True)


@with_pop3()
def test_getmail6_to_a_maildir_then_delete(inst, lst):
    need("getmail", "getmail6")
    deliver(inst, mail_set())
    originals = maildir_files(inst)
    w = workdir()
    try:
        md = os.path.join(w, "Maildir") + "/"
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(md, sub))
        gm = os.path.join(w, "getmail")
        os.mkdir(gm)
        # getmail refuses to deliver as root. Its own switch ("user = nobody")
        # forks a delivery child from a threaded process, and now and then
        # (under load) the parent never returns from a futex wait after
        # the child has exited: so getmail runs as nobody from the start.
        as_nobody = None
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            subprocess.run(["chown", "-R", "nobody", w], check=True)
            os.chmod(w, 0o755)

            def as_nobody():
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)

        def rc(delete, read_all):
            write_private(os.path.join(gm, "getmailrc"),
                          "[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\nport = %d\n"
                          "username = alice\npassword = %s\n\n[destination]\ntype = Maildir\npath = %s\n\n"
                          "[options]\nread_all = %s\ndelete = %s\nreceived = false\ndelivered_to = false\n"
                          % (lst.port, PASSWORD, md, read_all, delete))
            if as_nobody:
                subprocess.run(["chown", "-R", "nobody", gm], check=True)
        argv = ["getmail", "--rcfile", "getmailrc", "--getmaildir", gm]
        rc(delete="false", read_all="false")
        code, text = run(argv, w, preexec_fn=as_nobody)
        assert code == 0, text
        # getmail's parser turns a bare CR into a line end
        expected = sorted(as_received(c).replace(BARE_CR, b"bare\ncr") for _, c in originals.values())
        assert read_dir(os.path.join(md, "new")) == expected, text
        wait_unlocked(inst)
        code, text = run(argv, w, preexec_fn=as_nobody)   # oldmail file: nothing new
        assert code == 0 and len(os.listdir(os.path.join(md, "new"))) == 7, text
        rc(delete="true", read_all="true")
        wait_unlocked(inst)
        code, text = run(argv, w, preexec_fn=as_nobody)
        assert code == 0, text
        wait_unlocked(inst)
        assert inst.count("alice") == 0
        assert len(os.listdir(os.path.join(md, "new"))) == 14
    finally:
        shutil.rmtree(w, ignore_errors=True)


@with_pop3()
def test_a_client_refused_while_another_session_holds_the_mailbox(inst, lst):
    need("mpop", "mpop")
    import poplib
    deliver(inst, [b"Subject: x\n\nx\n"])
    p = poplib.POP3("127.0.0.1", lst.port, timeout=10)
    p.user("alice")
    p.pass_(PASSWORD)
    w = workdir()
    try:
        write_private(os.path.join(w, "rc"), "account test\nhost 127.0.0.1\nport %d\ntls off\nuser alice\n"
                      "auth user\npassword %s\ndelivery maildir %s\nuidls_file %s/uidls\n"
                      % (lst.port, PASSWORD, w, w))
        code, text = run(["mpop", "-C", os.path.join(w, "rc"), "test"], w)
        assert code != 0 and "[IN-USE]" in text, (code, text)
    finally:
        shutil.rmtree(w, ignore_errors=True)
    p.quit()
    assert inst.count("alice") == 1


if __name__ == "__main__":
    harness.run(globals())
