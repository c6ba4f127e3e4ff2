// local-deliver: one message on fd 0 for one local recipient.
//   local-deliver USER HOME LOCAL DASH EXT DOMAIN SENDER DEFAULTDELIVERY
// Follows the recipient's .qmail or .forward file (or an alias), else the
// default delivery. Exit 0 delivered, 100 permanent failure, 111 temporary
// failure; one line on stdout says why. See local-deliver(8), dot-qmail(5).
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "aliases.hpp"
#include "delivery.hpp"
#include "exitcodes.hpp"
#include "forward.hpp"
#include "header.hpp"
#include "userfile.hpp"
#include "users.hpp"

using namespace yubin;

namespace {

[[noreturn]] void finish(const DeliveryResult& r) {
    std::string line = r.line() + "\n";
    ssize_t n = ::write(1, line.data(), line.size());
    (void)n;
    switch (r.kind) {
    case DeliveryResult::Kind::ok: std::_Exit(deliver_exit::ok);
    case DeliveryResult::Kind::permanent: std::_Exit(deliver_exit::permanent);
    case DeliveryResult::Kind::temporary: break;
    }
    std::_Exit(deliver_exit::temporary);
}

// True if a Delivered-To: field of the message names this recipient.
bool already_delivered(std::string_view message, std::string_view recipient) {
    size_t body = 0;
    HeaderBlock headers = HeaderBlock::parse(message, body);
    for (const HeaderField* f : headers.find_all("Delivered-To"))
        if (lowercase(unfold(f->value)) == lowercase(recipient)) return true;
    return false;
}

// A file of instructions that exists but must not or cannot be followed.
DeliveryResult refuse(const UserFile& f) {
    if (f.state == UserFile::State::unsafe)
        return DeliveryResult::temporary("4.7.0", "unsafe delivery file, not delivering: " + f.reason);
    return DeliveryResult::temporary("4.3.0", f.reason);
}

DeliveryResult follow_dot_qmail(LocalDelivery& d, const UserFile& f, const std::string& name) {
    DotQmail q = parse_dot_qmail(f.text);
    if (!q.error.empty()) return DeliveryResult::temporary("4.2.1", name + ": " + q.error);
    if (q.empty) return d.run_default();
    return d.run(q.instructions, name, false);
}

DeliveryResult follow_alias(const Instance& inst, LocalDelivery& d, const std::string& name, bool& found) {
    std::optional<std::string> value;
    try {
        value = alias_value(inst, name);
    } catch (const std::exception& e) {
        return DeliveryResult::temporary("4.3.0", std::string("control/aliases.cdb: ") + e.what());
    }
    found = value.has_value();
    if (!found) return DeliveryResult::success();
    ForwardList list = parse_forward_list(*value);
    if (!list.errors.empty())
        return DeliveryResult::temporary("4.3.5", "alias " + name + ": " + list.errors.front());
    return d.run(list.instructions, "alias " + name, false);
}

DeliveryResult deliver(const Instance& inst, const DeliveryArgs& a, LocalDelivery& d, char sep) {
    const uid_t me = ::geteuid();
    const bool alias_home = a.home == inst.path("alias");
    // NEWSENDER: LOCAL-owner@HOST when .qmail-EXT-owner exists (qmail's rule).
    if (!a.sender.empty() && a.sender != "#@[]") {
        const std::string owner_ext = a.ext.empty() ? "owner" : a.ext + sep + "owner";
        struct stat st;
        if (::stat((a.home + "/" + dot_qmail_name(owner_ext)).c_str(), &st) == 0)
            d.set_newsender(a.local + sep + "owner@" + a.domain);
    }
    if (a.ext.empty()) {
        UserFile q = read_user_file(a.home + "/.qmail", me);
        if (q.state == UserFile::State::ok) return follow_dot_qmail(d, q, ".qmail");
        if (q.state != UserFile::State::absent) return refuse(q);
        UserFile f = read_user_file(a.home + "/.forward", me);
        if (f.state == UserFile::State::ok) {
            ForwardList list = parse_forward_list(f.text);
            if (!list.errors.empty())
                return DeliveryResult::temporary("4.2.1", ".forward " + list.errors.front());
            if (list.instructions.empty()) return d.run_default();
            return d.run(list.instructions, ".forward", true);
        }
        if (f.state != UserFile::State::absent) return refuse(f);
        return d.run_default();
    }
    const auto candidates = dot_qmail_candidates(a.ext, sep);
    for (size_t i = 0; i < candidates.size(); ++i) {
        if (i == 1 && alias_home) {  // control/aliases after the exact .qmail-NAME
            bool found = false;
            DeliveryResult r = follow_alias(inst, d, lowercase(a.ext), found);
            if (found || !r.ok()) return r;
        }
        const QmailCandidate& c = candidates[i];
        UserFile f = read_user_file(a.home + "/" + c.name, me);
        if (f.state == UserFile::State::absent) continue;
        if (f.state != UserFile::State::ok) return refuse(f);
        if (c.is_default) d.set_default_part(c.default_part);
        return follow_dot_qmail(d, f, c.name);
    }
    const std::string ext = lowercase(a.ext);
    if (alias_home && (ext == "postmaster" || ext == "mailer-daemon" || ext == "root"))
        return d.run_default();
    return DeliveryResult::permanent("5.1.1", "no mailbox here by that name: " + a.local + "@" + a.domain);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 9) {
        std::fputs("usage: local-deliver USER HOME LOCAL DASH EXT DOMAIN SENDER DEFAULTDELIVERY\n", stderr);
        finish(DeliveryResult::temporary("4.3.5", "local-deliver called with bad arguments"));
    }
    ::umask(077);
    // Standard output carries the one result line; what a helper (queue-inject)
    // says on standard error must not come before it.
    if (int null = ::open("/dev/null", O_WRONLY); null >= 0) {
        ::dup2(null, 2);
        if (null != 2) ::close(null);
    }
    // Orphans of delivery programs come back to us, to be killed and reaped.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    DeliveryArgs a{argv[1], argv[2], argv[3], argv[4], argv[5], argv[6], argv[7], argv[8]};
    if (a.home.empty() || a.home[0] != '/' || ::chdir(a.home.c_str()) < 0)
        finish(DeliveryResult::temporary("4.2.0", "cannot enter home directory " + a.home));
    struct stat st;
    if (::stat(".", &st) < 0)
        finish(DeliveryResult::temporary("4.2.0", "cannot stat home directory " + a.home));
    if (auto why = unsafe_reason(st, ::geteuid(), false))
        finish(DeliveryResult::temporary("4.7.0",
                                         "unsafe home directory, not delivering: " + a.home + " " + *why));
    if (a.defaultdelivery.empty()) finish(DeliveryResult::temporary("4.3.5", "empty default delivery"));

    std::optional<Instance> inst;
    char sep = a.dash.empty() ? '-' : a.dash[0];
    try {
        inst.emplace(Instance::of_this_program());
        if (a.dash.empty()) sep = extension_separator(*inst);
    } catch (const std::exception& e) {
        finish(DeliveryResult::temporary("4.3.5", e.what()));
    }

    std::string message;
    try {
        message = read_all(0);
    } catch (const SysError& e) {
        finish(DeliveryResult::temporary("4.3.0", std::string("cannot read the message: ") + e.what()));
    }
    const std::string recipient = a.local + "@" + a.domain;
    if (already_delivered(message, recipient))
        finish(DeliveryResult::permanent(
            "5.4.6", "mail loop: this message has already been delivered to " + recipient));

    LocalDelivery d(*inst, a, std::move(message), sep);
    finish(deliver(*inst, a, d, sep));
}
