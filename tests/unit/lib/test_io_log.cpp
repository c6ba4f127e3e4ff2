#include "exitcodes.hpp"
#include "io.hpp"
#include "log.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

using namespace yubin;
using namespace std::string_literals;

// --- lib/io

TEST_CASE("write_file_atomic and read_file round trip", "[io]") {
    test::TempDir dir;
    const std::string path = dir / "file";
    const std::string data = "line 1\nline 2\0with NUL\n"s;
    write_file_atomic(path, data, 0640);
    CHECK(read_file(path) == data);
    CHECK(test::file_mode(path) == (0640 & ~static_cast<int>(test::current_umask())));
    CHECK(test::dir_entries(dir.path()) == std::vector<std::string>{"file"});  // no .tmp left

    // Replacing with shorter data leaves nothing of the old contents.
    write_file_atomic(path, "short", 0600);
    CHECK(read_file(path) == "short");
    write_file_atomic(path, "", 0600);
    CHECK(read_file(path) == "");

    // Larger than one read buffer.
    std::string big(200000, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
    write_file_atomic(path, big);
    CHECK(read_file(path) == big);
    CHECK(read_file(path, big.size()) == big);
    CHECK(test::dir_entries(dir.path()) == std::vector<std::string>{"file"});
}

TEST_CASE("read_file: missing file is nullopt, other errors throw", "[io]") {
    test::TempDir dir;
    CHECK_FALSE(read_file(dir / "missing").has_value());
    CHECK_FALSE(read_file(dir / "no/such/dir/file").has_value());
    try {
        read_file(dir.path());
        FAIL("no exception reading a directory");
    } catch (const SysError& e) {
        CHECK(e.err() == EISDIR);
    }
    write_file_atomic(dir / "f", "x");
    try {
        read_file(dir / "f/below");
        FAIL("no exception for a path through a file");
    } catch (const SysError& e) {
        CHECK(e.err() == ENOTDIR);
        CHECK(std::string(e.what()).find(dir / "f/below") != std::string::npos);
    }
}

TEST_CASE("read_all stops at max with EFBIG", "[io]") {
    test::TempDir dir;
    const std::string path = dir / "f";
    write_file_atomic(path, std::string(100000, 'x'));
    {
        Fd fd = open_or_throw(path, O_RDONLY);
        CHECK(read_all(fd.get(), 100000).size() == 100000);
    }
    for (size_t max : {size_t{0}, size_t{1}, size_t{65536}, size_t{99999}}) {
        INFO("max = " << max);
        Fd fd = open_or_throw(path, O_RDONLY);
        try {
            read_all(fd.get(), max);
            FAIL("no exception");
        } catch (const SysError& e) {
            CHECK(e.err() == EFBIG);
        }
    }
    try {
        read_file(path, 10);
        FAIL("no exception");
    } catch (const SysError& e) {
        CHECK(e.err() == EFBIG);
    }
    // An empty input is fine with max 0.
    write_file_atomic(path, "");
    CHECK(read_file(path, 0) == "");
}

TEST_CASE("read_all and write_all through a pipe", "[io]") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    Fd r(p[0]), w(p[1]);
    write_all(w.get(), "hello, ");
    write_all(w.get(), "world");
    write_all(w.get(), "");
    w.reset();
    CHECK(read_all(r.get()) == "hello, world");
    CHECK_THROWS_AS(write_all(-1, "x"), SysError);
    CHECK_THROWS_AS(read_all(-1), SysError);
}

TEST_CASE("Fd owns and closes its descriptor", "[io]") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    ::close(p[1]);
    {
        Fd a(p[0]);
        CHECK(a);
        CHECK(a.get() == p[0]);
        Fd b(std::move(a));
        CHECK_FALSE(a);
        CHECK(b.get() == p[0]);
        Fd c;
        CHECK_FALSE(c);
        c = std::move(b);
        CHECK(c.get() == p[0]);
        CHECK(::fcntl(p[0], F_GETFD) >= 0);
    }
    const int closed = ::fcntl(p[0], F_GETFD);
    const int err = errno;
    CHECK(closed == -1);
    CHECK(err == EBADF);

    REQUIRE(::pipe(p) == 0);
    Fd x(p[0]);
    int raw = x.release();
    CHECK_FALSE(x);
    CHECK(::fcntl(raw, F_GETFD) >= 0);
    x.reset(p[1]);
    ::close(raw);
}

TEST_CASE("open_or_throw, SysError and dirname_of", "[io]") {
    test::TempDir dir;
    try {
        open_or_throw(dir / "missing", O_RDONLY);
        FAIL("no exception");
    } catch (const SysError& e) {
        CHECK(e.err() == ENOENT);
        CHECK(std::string(e.what()) == "open " + (dir / "missing") + ": " + std::strerror(ENOENT));
    }
    Fd fd = open_or_throw(dir / "new", O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0);

    CHECK(SysError("write", EPIPE).err() == EPIPE);
    CHECK(std::string(SysError("write", EPIPE).what()) == "write: "s + std::strerror(EPIPE));

    CHECK(dirname_of("/a/b/c") == "/a/b");
    CHECK(dirname_of("/a") == "/");
    CHECK(dirname_of("/") == "/");
    CHECK(dirname_of("a") == ".");
    CHECK(dirname_of("a/b") == "a");
    CHECK(dirname_of("") == ".");
}

// --- lib/log

TEST_CASE("log_value leaves plain tokens bare and quotes the rest", "[log]") {
    struct Row {
        std::string in, out;
    };
    const std::vector<Row> rows = {
        {"abc", "abc"},
        {"1700000000.123.42", "1700000000.123.42"},
        {"<a@b.example>", "<a@b.example>"},
        {"4.2.0", "4.2.0"},
        {"", "\"\""},
        {"a b", "\"a b\""},
        {" ", "\" \""},
        {"no such user", "\"no such user\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"\"", "\"\\\"\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"a=b", "\"a=b\""},
        {"line\nbreak", "\"line\\x0abreak\""},
        {"cr\r", "\"cr\\x0d\""},
        {"tab\there", "\"tab\\x09here\""},
        {"nul\0"s, "\"nul\\x00\""},
        {"\x1b[31m", "\"\\x1b[31m\""},
        {"del\x7f", "\"del\\x7f\""},
        {"caf\xC3\xA9", "\"caf\xC3\xA9\""},  // quoted, bytes kept
    };
    for (const auto& r : rows) {
        INFO("value: " << r.in);
        CHECK(log_value(r.in) == r.out);
    }
}

TEST_CASE("Log::format lays out program: key=value ...", "[log]") {
    Log log("queue-manager");
    CHECK(log.format({{"event", "delivery"}, {"id", "1.2.3"}, {"rcpt", "a@b"}, {"result", "ok"}}) ==
          "queue-manager: event=delivery id=1.2.3 rcpt=a@b result=ok\n");
    CHECK(log.format({{"event", "failure"}, {"text", "4.2.0 mailbox is full"}}) ==
          "queue-manager: event=failure text=\"4.2.0 mailbox is full\"\n");
    CHECK(log.format({{"empty", ""}}) == "queue-manager: empty=\"\"\n");
    CHECK(log.format({}) == "queue-manager:\n");
    CHECK(log.format({{"text", "two\nlines"}}) == "queue-manager: text=\"two\\x0alines\"\n");
}

TEST_CASE("Log writes one line to its descriptor", "[log]") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    Fd r(p[0]), w(p[1]);
    Log log("local-spawn", w.get());
    log({{"event", "start"}});
    log({{"event", "stop"}, {"why", "end of input"}});
    w.reset();
    CHECK(read_all(r.get()) == "local-spawn: event=start\nlocal-spawn: event=stop why=\"end of input\"\n");
}

// --- lib/exitcodes

TEST_CASE("inject_exit::is_permanent follows qmail-queue's ranges", "[exitcodes]") {
    for (int c = -1; c <= 120; ++c) {
        INFO("code " << c);
        CHECK(inject_exit::is_permanent(c) == (c >= 11 && c <= 40));
    }
    CHECK(inject_exit::is_permanent(inject_exit::bad_address));
    CHECK(inject_exit::is_permanent(inject_exit::refused));
    for (int c : {inject_exit::no_memory, inject_exit::timeout, inject_exit::write_error, inject_exit::read_error,
                  inject_exit::no_config, inject_exit::cannot_create, inject_exit::internal,
                  inject_exit::envelope_format}) {
        INFO("code " << c);
        CHECK_FALSE(inject_exit::is_permanent(c));
        CHECK(c >= 51);
        CHECK(c <= 99);
    }
    static_assert(inject_exit::is_permanent(11) && !inject_exit::is_permanent(41));
}

TEST_CASE("inject_exit::describe names every code", "[exitcodes]") {
    CHECK(std::string(inject_exit::describe(inject_exit::ok)) == "queued");
    CHECK(std::string(inject_exit::describe(inject_exit::bad_address)) ==
          "address too long or contains CR, LF or NUL");
    CHECK(std::string(inject_exit::describe(inject_exit::refused)) == "message refused: no recipients");
    CHECK(std::string(inject_exit::describe(inject_exit::write_error)) == "write error or disk full");
    CHECK(std::string(inject_exit::describe(inject_exit::envelope_format)) == "envelope format error");
    CHECK(std::string(inject_exit::describe(12)) == "permanent queue failure");
    CHECK(std::string(inject_exit::describe(40)) == "permanent queue failure");
    CHECK(std::string(inject_exit::describe(41)) == "temporary queue failure");
    CHECK(std::string(inject_exit::describe(75)) == "temporary queue failure");

    // Every named code has its own text.
    const std::vector<int> named = {inject_exit::ok,          inject_exit::bad_address, inject_exit::refused,
                                    inject_exit::no_memory,   inject_exit::timeout,     inject_exit::write_error,
                                    inject_exit::read_error,  inject_exit::no_config,   inject_exit::cannot_create,
                                    inject_exit::internal,    inject_exit::envelope_format};
    std::set<std::string> texts;
    for (int c : named) texts.insert(inject_exit::describe(c));
    CHECK(texts.size() == named.size());
    CHECK(texts.count("permanent queue failure") == 0);
    CHECK(texts.count("temporary queue failure") == 0);
}

TEST_CASE("deliver_exit and sysexit values are the documented ones", "[exitcodes]") {
    CHECK(deliver_exit::ok == 0);
    CHECK(deliver_exit::stop == 99);
    CHECK(deliver_exit::permanent == 100);
    CHECK(deliver_exit::temporary == 111);
    CHECK(sysexit::usage == 64);
    CHECK(sysexit::dataerr == 65);
    CHECK(sysexit::nouser == 67);
    CHECK(sysexit::software == 70);
    CHECK(sysexit::tempfail == 75);
    CHECK(sysexit::config == 78);
}

TEST_CASE("keep_log_from_client: under inetd a log line never reaches the client", "[log]") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {   // the server: its connection on 0, 1 and 2, as inetd gives it
        ::dup2(sv[0], 0);
        ::dup2(sv[0], 1);
        ::dup2(sv[0], 2);
        ::close(sv[0]);
        ::close(sv[1]);
        keep_log_from_client();
        Log("test")({{"event", "secret-log-line"}});
        ssize_t n = ::write(1, "reply\r\n", 7);
        ::_exit(n == 7 ? 0 : 1);
    }
    ::close(sv[0]);
    std::string got;
    char buf[256];
    ssize_t n;
    while ((n = ::read(sv[1], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    ::close(sv[1]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(got == "reply\r\n");
}

TEST_CASE("keep_log_from_client: a stderr of its own is left alone", "[log]") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(p[1], 2);
        ::close(p[0]);
        ::close(p[1]);
        keep_log_from_client();
        Log("test")({{"event", "kept"}});
        ::_exit(0);
    }
    ::close(p[1]);
    std::string got;
    char buf[256];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    ::close(p[0]);
    ::waitpid(pid, nullptr, 0);
    CHECK(got == "test: event=kept\n");
}
