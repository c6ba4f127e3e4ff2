"""The include rule of docs/ARCHITECTURE.md ("Folders and what they may
include"), tried on a copy of the tree: a file that reaches a header its
folder may not use, directly or through another header and however the path
is spelled, fails the build with a line that names both; a file that keeps
to the rule builds. Each case compiles one probe file with the real Makefile
and tests/check-includes in a copy of the sources (the tree itself is never
touched)."""
import os
import shutil
import struct
import subprocess
import tempfile

import harness

SOURCES = ["Makefile", "lib", "smtpd", "send", "queue", "local", "remote", "pop3d",
           os.path.join("tests", "check-includes"), os.path.join("tests", "unit")]


class Tree:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="yubin-layout.")
        for s in SOURCES:
            src, dst = os.path.join(harness.TOP, s), os.path.join(self.dir, s)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.isdir(src):
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)

    def write(self, path, text):
        full = os.path.join(self.dir, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)

    def build(self, source):
        """make the object of source; returns (exit code, output, object exists)."""
        obj = os.path.join("build", "obj", source[:-len(".cpp")] + ".o")
        p = subprocess.run(["make", "--no-print-directory", "BUILD=build", obj], cwd=self.dir,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        return p.returncode, p.stdout.decode(errors="replace"), os.path.exists(os.path.join(self.dir, obj))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def with_tree(fn):
    def run():
        t = Tree()
        try:
            fn(t)
        finally:
            t.cleanup()
    run.__name__ = fn.__name__
    return run


def refused(t, source, *words):
    rc, out, exists = t.build(source)
    assert rc != 0, "%s built, though it breaks the rule:\n%s" % (source, out)
    assert not exists, "the object of %s was left behind" % source
    for w in words:
        assert w in out, "%r is not in make's output:\n%s" % (w, out)


def accepted(t, source):
    rc, out, exists = t.build(source)
    assert rc == 0 and exists, "%s did not build:\n%s" % (source, out)


@with_tree
def test_lib_including_a_stage_header_fails_the_build(t):
    t.write("lib/probe.cpp", '#include "../remote/dns.hpp"\nint probe;\n')
    refused(t, "lib/probe.cpp", "lib/probe.cpp includes remote/dns.hpp", "lib/ may include only from lib/")
    # the same file with a lib/ header builds: the refusal was for the include
    t.write("lib/probe.cpp", '#include "io.hpp"\nint probe;\n')
    accepted(t, "lib/probe.cpp")


@with_tree
def test_a_stage_header_reached_through_a_lib_header_is_found(t):
    t.write("lib/probe.hpp", '#pragma once\n#include "../smtpd/netrules.hpp"\n')
    t.write("lib/probe.cpp", '#include "probe.hpp"\nint probe;\n')
    refused(t, "lib/probe.cpp", "includes smtpd/netrules.hpp")
    # and a stage file that includes that lib header breaks the rule too
    t.write("queue/probe.cpp", '#include "probe.hpp"\nint probe;\n')
    refused(t, "queue/probe.cpp", "queue/probe.cpp includes smtpd/netrules.hpp",
            "queue/ may include only from queue/, lib/")


@with_tree
def test_a_stage_including_another_stage_fails_the_build(t):
    t.write("local/probe.cpp", '#include "../queue/writer.hpp"\nint probe;\n')
    refused(t, "local/probe.cpp", "local/probe.cpp includes queue/writer.hpp")
    t.write("local/probe.cpp", '#include "dotqmail.hpp"\n#include "users.hpp"\nint probe;\n')
    accepted(t, "local/probe.cpp")


@with_tree
def test_a_stage_header_that_hides_a_lib_header_fails_the_build(t):
    # remote/io.hpp would be found before lib/io.hpp by every file in remote/
    t.write("remote/io.hpp", "#pragma once\nint hidden;\n")
    t.write("remote/probe.cpp", '#include "io.hpp"\nint probe;\n')
    refused(t, "remote/probe.cpp", "remote/io.hpp has the name of lib/io.hpp")


@with_tree
def test_unit_tests_keep_to_their_folder(t):
    t.write("tests/unit/remote/test_probe.cpp", '#include "../../../pop3d/lines.hpp"\nint probe;\n')
    refused(t, "tests/unit/remote/test_probe.cpp", "includes pop3d/lines.hpp",
            "tests/unit/remote/ may include only from tests/unit/remote/, tests/unit/, remote/, lib/")
    t.write("tests/unit/lib/test_probe.cpp", '#include "../../../smtpd/netrules.hpp"\nint probe;\n')
    refused(t, "tests/unit/lib/test_probe.cpp", "includes smtpd/netrules.hpp")
    t.write("tests/unit/remote/test_probe.cpp",
            '#include "dns.hpp"\n#include "io.hpp"\n#include "temp_dir.hpp"\n#include "test_dns_server.hpp"\n'
            'int probe;\n')
    accepted(t, "tests/unit/remote/test_probe.cpp")


def has_interpreter(path):
    """Whether the ELF file asks for a dynamic loader (a PT_INTERP header)."""
    with open(path, "rb") as f:
        elf = f.read(64)
        assert elf[:4] == b"\x7fELF" and elf[4] == 2, "%s is not a 64-bit ELF file" % path
        phoff, = struct.unpack_from("<Q", elf, 32)
        phentsize, phnum = struct.unpack_from("<HH", elf, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack("<I", f.read(4))
            if p_type == 3:   # PT_INTERP
                return True
    return False


def test_the_programs_that_start_per_message_are_static():
    # docs/ARCHITECTURE.md, "Linking": queue-inject, local-deliver, smtpd, pop3d
    # and remote-deliver are linked with -static (not under the sanitizers, whose
    # runtimes need the dynamic loader); the others link libstdc++ statically.
    sanitized = "san" in os.path.basename(harness.BUILD.rstrip("/"))
    for prog in ("queue-inject", "local-deliver", "smtpd", "pop3d", "remote-deliver"):
        dynamic = has_interpreter(os.path.join(harness.BUILD, "bin", prog))
        assert dynamic == sanitized, "%s is %s" % (prog, "dynamic" if dynamic else "static")
    assert has_interpreter(os.path.join(harness.BUILD, "bin", "queue-manager"))


if __name__ == "__main__":
    harness.run(globals())
