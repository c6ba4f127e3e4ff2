// yubin-newaliases: compiles INSTANCE/control/aliases into
// INSTANCE/control/aliases.cdb. See yubin-newaliases(8).
//   yubin-newaliases [-n]     (-n: check only, write nothing)
#include <cstdio>
#include <cstring>
#include <set>

#include "aliases.hpp"
#include "exitcodes.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "users.hpp"

using namespace yubin;

int main(int argc, char** argv) {
    bool check_only = false;
    if (argc == 2 && std::strcmp(argv[1], "-n") == 0) check_only = true;
    else if (argc != 1) {
        std::fputs("usage: yubin-newaliases [-n]\n", stderr);
        return sysexit::usage;
    }
    try {
        Instance inst = Instance::of_this_program();
        auto text = read_file(inst.control_path("aliases"), 64 << 20);
        AliasFile file = parse_aliases(text ? *text : "");
        for (const auto& e : file.errors)
            std::fprintf(stderr, "yubin-newaliases: control/aliases %s\n", e.c_str());
        if (!file.errors.empty()) {
            std::fprintf(stderr, "yubin-newaliases: %zu error%s; control/aliases.cdb not changed\n",
                         file.errors.size(), file.errors.size() == 1 ? "" : "s");
            return sysexit::dataerr;
        }
        std::set<std::string> users;
        try {
            for (const auto& u : load_users(inst)) users.insert(u.name);
        } catch (const SysError&) {
            // users/ is not readable by this user: no shadowing check.
        }
        for (const auto& r : file.records)
            if (users.count(r.name))
                std::fprintf(stderr,
                             "yubin-newaliases: warning: line %zu: alias %s is never used: "
                             "a user has that name\n",
                             r.line, r.name.c_str());
        if (!check_only)
            write_file_atomic(inst.control_path("aliases.cdb"), build_aliases_cdb(file.records), 0644);
        const size_t n = file.records.size();
        std::printf("yubin-newaliases: %zu alias%s%s\n", n, n == 1 ? "" : "es",
                    check_only ? " checked" : " written to control/aliases.cdb");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "yubin-newaliases: %s\n", e.what());
        return sysexit::tempfail;
    }
    return 0;
}
