#include "delivery.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#include "address.hpp"
#include "exitcodes.hpp"
#include "forward.hpp"
#include "inject.hpp"
#include "maildir.hpp"
#include "mbox.hpp"
#include "userfile.hpp"

namespace yubin {

namespace {

constexpr int max_include_depth = 5;
constexpr long default_timeout = 3600;
constexpr size_t max_program_output = 4096;

std::string where_of(const std::string& source, const Instruction& in) {
    return source + " line " + std::to_string(in.line);
}

std::string count(size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

LocalDelivery::LocalDelivery(const Instance& inst, DeliveryArgs rcpt, std::string message, char sep)
    : inst_(inst), rcpt_(std::move(rcpt)), message_(std::move(message)), sep_(sep),
      newsender_(rcpt_.sender) {}

void LocalDelivery::set_default_part(std::string part) {
    has_default_ = true;
    default_part_ = std::move(part);
}

const std::string& LocalDelivery::me() {
    if (me_.empty()) me_ = inst_.control_string("me", "localhost");
    return me_;
}

DeliveryResult LocalDelivery::run(const std::vector<Instruction>& list, const std::string& source,
                                  bool forward_file) {
    DeliveryResult r = steps(list, source, forward_file, 0);
    if (!r.ok()) return r;
    r = inject_forwards();
    if (!r.ok()) return r;
    return DeliveryResult::success(summary());
}

DeliveryResult LocalDelivery::run_default() {
    DotQmail d = parse_dot_qmail(rcpt_.defaultdelivery + "\n");
    if (!d.error.empty() || d.instructions.empty())
        return DeliveryResult::temporary("4.3.5", "control/defaultdelivery is unusable: " +
                                                      (d.error.empty() ? "no instructions" : d.error));
    return run(d.instructions, "control/defaultdelivery", false);
}

DeliveryResult LocalDelivery::steps(const std::vector<Instruction>& list, const std::string& source,
                                    bool forward_file, int depth) {
    for (const Instruction& in : list) {
        DeliveryResult r = step(in, source, forward_file, depth);
        if (!r.ok()) return r;
        if (stop_) break;
    }
    return DeliveryResult::success();
}

DeliveryResult LocalDelivery::step(const Instruction& in, const std::string& source, bool forward_file,
                                   int depth) {
    const std::string where = where_of(source, in);
    switch (in.kind) {
    case Instruction::Kind::maildir:
    case Instruction::Kind::mbox:
        return to_mailbox(in, where);
    case Instruction::Kind::program:
        return to_program(in, where);
    case Instruction::Kind::include:
        return include(in, where, forward_file, depth);
    case Instruction::Kind::self:
        if (lowercase(in.value) == lowercase(rcpt_.user)) {
            // The user's own mailbox, without forwarding: the default delivery.
            DotQmail d = parse_dot_qmail(rcpt_.defaultdelivery + "\n");
            if (!d.error.empty() || d.instructions.empty())
                return DeliveryResult::temporary("4.3.5", "control/defaultdelivery is unusable");
            return steps(d.instructions, "control/defaultdelivery", false, depth);
        }
        return add_forward(in.value, where);
    case Instruction::Kind::forward:
        if (forward_file && names_recipient(in.value))
            return step(Instruction{Instruction::Kind::self, rcpt_.user, in.line}, source, forward_file,
                        depth);
        return add_forward(in.value, where);
    }
    return DeliveryResult::temporary("4.3.0", where + ": unknown instruction");
}

DeliveryResult LocalDelivery::to_mailbox(const Instruction& in, const std::string& where) {
    std::string_view rel = in.value;
    while (rel.substr(0, 2) == "./") rel.remove_prefix(2);
    std::string path = in.value[0] == '/' ? in.value : rcpt_.home + "/" + std::string(rel);
    const std::string prefix = rp_line(rcpt_.sender) + dt_line(rcpt_.local, rcpt_.domain);
    DeliveryResult r = in.kind == Instruction::Kind::maildir
                           ? maildir_deliver(path.substr(0, path.size() - 1), prefix, message_)
                           : mbox_deliver(path, rcpt_.sender, ::time(nullptr), prefix, message_);
    if (!r.ok()) r.text = where + ": " + r.text;
    else ++files_;
    return r;
}

DeliveryResult LocalDelivery::to_program(const Instruction& in, const std::string& where) {
    if (!message_fd_) {
        int fd = ::memfd_create("yubin-message", MFD_CLOEXEC);
        if (fd < 0)
            return DeliveryResult::temporary("4.3.0", std::string("memfd_create: ") + std::strerror(errno));
        message_fd_ = Fd(fd);
        try {
            write_all(fd, message_);
        } catch (const SysError& e) {
            message_fd_.reset();
            return DeliveryResult::temporary("4.3.0", std::string("cannot copy the message: ") + e.what());
        }
    }
    CommandLimits limits;
    try {
        limits.timeout = static_cast<double>(inst_.control_long("timeoutlocal", default_timeout, 1, 86400));
    } catch (const std::exception& e) {
        return DeliveryResult::temporary("4.3.5", e.what());
    }
    limits.max_output = max_program_output;
    DeliveryEnvironment e;
    e.user = rcpt_.user;
    e.home = rcpt_.home;
    e.local = rcpt_.local;
    e.ext = rcpt_.ext;
    e.domain = rcpt_.domain;
    e.sender = rcpt_.sender;
    e.newsender = newsender_;
    e.has_default = has_default_;
    e.default_part = default_part_;
    e.sep = sep_;
    e.now = ::time(nullptr);
    CommandResult cr = run_command(in.value, rcpt_.home, delivery_environment(e), message_fd_.get(), limits);
    ProgramOutcome o = program_outcome(cr, where, limits.timeout);
    if (o.result.ok()) ++programs_;
    if (o.stop) stop_ = true;
    return o.result;
}

DeliveryResult LocalDelivery::include(const Instruction& in, const std::string& where, bool forward_file,
                                      int depth) {
    if (depth >= max_include_depth)
        return DeliveryResult::temporary("4.3.5", where + ": :include: nested more than " +
                                                      std::to_string(max_include_depth) + " deep");
    UserFile f = read_user_file(in.value, ::geteuid());
    switch (f.state) {
    case UserFile::State::absent:
        return DeliveryResult::temporary("4.3.5",
                                         where + ": :include: file " + in.value + " does not exist");
    case UserFile::State::unsafe:
        return DeliveryResult::temporary("4.7.0",
                                         where + ": unsafe :include: file, not followed: " + f.reason);
    case UserFile::State::error:
        return DeliveryResult::temporary("4.3.0", where + ": " + f.reason);
    case UserFile::State::ok:
        break;
    }
    ForwardList list = parse_forward_list(f.text);
    if (!list.errors.empty())
        return DeliveryResult::temporary("4.3.5", in.value + " " + list.errors.front());
    return steps(list.instructions, in.value, forward_file, depth + 1);
}

bool LocalDelivery::names_recipient(const std::string& address) const {
    const std::string a = lowercase(address);
    const std::string user = lowercase(rcpt_.user), local = lowercase(rcpt_.local);
    const std::string domain = lowercase(rcpt_.domain);
    return a == user || a == local || a == user + "@" + domain || a == local + "@" + domain;
}

DeliveryResult LocalDelivery::add_forward(const std::string& address, const std::string& where) {
    std::string a = address.find('@') == std::string::npos ? address + "@" + me() : address;
    if (!address_is_storable(a) || a.size() > max_path_length)
        return DeliveryResult::temporary("4.3.5", where + ": bad forwarding address");
    // Each address once, compared without regard to case.
    if (forward_keys_.insert(lowercase(a)).second) forwards_.push_back(std::move(a));
    return DeliveryResult::success();
}

DeliveryResult LocalDelivery::inject_forwards() {
    if (forwards_.empty()) return DeliveryResult::success();
    QueueInjection q(inst_);
    Envelope env{newsender_, forwards_};
    if (!q.start(env)) {
        int code = q.abort();
        return DeliveryResult::temporary("4.3.0",
                                         std::string("cannot forward: queue-inject: ") +
                                             inject_exit::describe(code ? code : inject_exit::internal));
    }
    q.write(dt_line(rcpt_.local, rcpt_.domain));
    q.write(message_);
    const int code = q.finish();
    if (code != inject_exit::ok) {
        std::string text = std::string("cannot forward: queue-inject: ") + inject_exit::describe(code);
        return inject_exit::is_permanent(code) ? DeliveryResult::permanent("5.3.0", text)
                                               : DeliveryResult::temporary("4.3.0", text);
    }
    queue_id_ = q.id();
    return DeliveryResult::success();
}

std::string LocalDelivery::summary() const {
    std::string s = "delivered: " + count(files_, "mailbox", "mailboxes") + ", " +
                    count(programs_, "program", "programs") + ", " +
                    count(forwards_.size(), "forward", "forwards");
    if (!queue_id_.empty()) s += " (queued as " + queue_id_ + ")";
    return s;
}

}  // namespace yubin
