#include "writer.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>

#include "exitcodes.hpp"
#include "temp_dir.hpp"

using namespace yubin;
using namespace std::string_literals;

namespace {
struct TestQueue {
    test::TempDir dir;
    Instance inst{dir.path()};
    TestQueue() {
        for (const char* d : {"queue", "queue/tmp", "queue/new", "queue/cur", "queue/lock"})
            REQUIRE(::mkdir((dir / d).c_str(), 0700) == 0);
    }
};

int code_of(std::string_view raw) {
    try {
        check_envelope(raw);
        return inject_exit::ok;
    } catch (const QueueWriteError& e) {
        return e.code();
    }
}
}  // namespace

TEST_CASE("check_envelope takes what queue-inject takes, with its codes", "[queue_writer]") {
    CHECK(code_of("Fa@b\0Tc@d\0\0"s) == inject_exit::ok);
    CHECK(code_of("F\0Tc@d\0Te@f\0\0"s) == inject_exit::ok);  // null sender
    CHECK(check_envelope("Fa@b\0Tc@d\0Te@f\0\0"s).recipients.size() == 2);
    CHECK(code_of("") == inject_exit::envelope_format);
    CHECK(code_of("garbage") == inject_exit::envelope_format);
    CHECK(code_of("Fa@b\0Tc@d\0\0extra"s) == inject_exit::envelope_format);
    CHECK(code_of("Fa@b\0\0"s) == inject_exit::refused);
    CHECK(code_of("Fa@b\0T\0\0"s) == inject_exit::bad_address);
    CHECK(code_of("Fa\nb@c\0Tc@d\0\0"s) == inject_exit::bad_address);
    CHECK(code_of("Fa@b\0Tc\r@d\0\0"s) == inject_exit::bad_address);
    CHECK(code_of("F" + std::string(1001, 'a') + "\0Tc@d\0\0"s) == inject_exit::bad_address);
    CHECK(code_of("Fa@b\0T"s + std::string(1000, 'a') + "\0\0"s) == inject_exit::ok);
    CHECK(code_of("Fa@b\0T"s + std::string(1001, 'a') + "\0\0"s) == inject_exit::bad_address);
}

TEST_CASE("QueueIds never repeat nor go back within a process, and are valid ids", "[queue_writer]") {
    QueueIds ids;
    std::set<std::string> seen;
    for (int i = 0; i < 100000; ++i) {  // far more than one per microsecond
        std::string id = ids.next(4242);
        REQUIRE(valid_queue_id(id));
        REQUIRE(seen.insert(id).second);
        REQUIRE(id.substr(id.rfind('.')) == ".4242");
    }
    CHECK(seen.size() == 100000);
}

TEST_CASE("QueueFile writes tmp/ID, commit moves it into new/, an uncommitted one is removed", "[queue_writer]") {
    TestQueue q;
    QueueIds ids;
    std::string kept, dropped;
    {
        QueueFile f(q.inst, ids, 77);
        kept = f.id();
        CHECK(test::dir_entries(q.dir / "queue/tmp") == std::vector<std::string>{kept});
        CHECK(test::file_mode(q.dir / "queue/tmp/" + kept) == static_cast<int>(0640 & ~test::current_umask()));
        Envelope env{"a@b", {"c@d"}};
        f.write(queue_file_head(1700000000, 1234, 77, env));
        f.write("Subject: x\n\nbody\n");
        f.commit();
        CHECK(f.committed());
        sync_queue_new(q.inst);
    }
    {
        QueueFile f(q.inst, ids, 77);
        dropped = f.id();
        f.write("half a message");
    }
    CHECK(test::dir_entries(q.dir / "queue/tmp").empty());
    CHECK(test::dir_entries(q.dir / "queue/new") == std::vector<std::string>{kept});
    auto text = read_file(q.dir / "queue/new/" + kept);
    REQUIRE(text);
    auto head = parse_queue_header(*text);
    REQUIRE(head);
    CHECK(head->uid == 1234);
    CHECK(head->envelope.sender == "a@b");
    CHECK(text->substr(head->message_offset, 38) == "Received: (yubin 77 invoked by uid 123");
    CHECK(text->ends_with("\nSubject: x\n\nbody\n"));
}

TEST_CASE("QueueFile never takes an id that names a file in new/ or cur/", "[queue_writer]") {
    TestQueue q;
    // A clock that stands still: the ids are 1700000000.000000.9, .000001.9, ...
    // (as after a restart with the same pid). Occupy the first ones in
    // new/, cur/ and tmp/.
    auto stopped = [] { return 1700000000LL * 1000000; };
    QueueIds probe(stopped), ids(stopped);
    std::set<std::string> taken;
    const char* where[] = {"queue/new/", "queue/cur/", "queue/tmp/", "queue/new/", "queue/cur/"};
    for (const char* w : where) {
        std::string id = probe.next(9);
        taken.insert(id);
        write_file_atomic(q.dir / w + id, "x");
    }
    CHECK(taken.count("1700000000.0.9") == 1);
    std::set<std::string> made;
    for (int i = 0; i < 20; ++i) {
        QueueFile f(q.inst, ids, 9);
        CHECK(taken.count(f.id()) == 0);
        CHECK(valid_queue_id(f.id()));
        CHECK(made.insert(f.id()).second);
        if (i == 0) CHECK(f.id() == "1700000000.5.9");
        f.commit();
    }
    CHECK(test::dir_entries(q.dir / "queue/new").size() == 2 + 20);
}

TEST_CASE("QueueFile reports a queue it cannot write as cannot_create", "[queue_writer]") {
    TestQueue q;
    QueueIds ids;
    REQUIRE(::rmdir((q.dir / "queue/tmp").c_str()) == 0);
    try {
        QueueFile f(q.inst, ids, 1);
        FAIL("made a file without queue/tmp");
    } catch (const QueueWriteError& e) {
        CHECK(e.code() == inject_exit::cannot_create);
    }
}
