// pop3d: POP3 (RFC 1939, RFC 2449) for one connection on stdin/stdout, on
// the Maildirs of an instance's users. Run by yubin-listen, tcpserver or
// inetd as "pop3d"; after a login it runs itself again as
// "pop3d session Maildir" for the mailbox. See pop3d(8).
#include <signal.h>
#include <sys/prctl.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <optional>

#include "config.hpp"
#include "front_end.hpp"
#include "instance.hpp"
#include "lines.hpp"
#include "log.hpp"
#include "session.hpp"

using namespace yubin;

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);   // passwords pass through this process: no core file
    keep_log_from_client();                 // inetd: stderr is the connection
    Log log("pop3d");
    std::optional<Instance> inst;
    pop3d::Config cfg;
    try {
        inst = Instance::of_this_program();
        cfg = pop3d::load_config(*inst);
        for (int i = 1; i < argc && std::strcmp(argv[1], "session") != 0; ++i) {
            if (std::strcmp(argv[i], "-T") == 0) cfg.implicit_tls = true;
            else throw std::runtime_error(std::string("usage: pop3d [-T]; unknown argument ") + argv[i]);
        }
    } catch (const std::exception& e) {
        log({{"event", "fatal"}, {"error", e.what()}});
        pop3d::say(pop3::err("[SYS/TEMP] mail system configuration error; try again later"));
        return pop3d::exit_status::temporary;
    }
    try {
        if (argc >= 2 && std::strcmp(argv[1], "session") == 0)
            return pop3d::run_session(cfg, argc >= 3 ? argv[2] : "Maildir", log);
        return pop3d::run_front_end(*inst, cfg, log);
    } catch (const std::exception& e) {   // no event loop, no memory: nothing was changed
        log({{"event", "fatal"}, {"error", e.what()}});
        pop3d::say(pop3::err("[SYS/TEMP] internal error; try again later"));
        return pop3d::exit_status::temporary;
    }
}
