// local-deliver: one message on fd 0 for one local recipient.
//   local-deliver USER HOME LOCAL DASH EXT DOMAIN SENDER DEFAULTDELIVERY
// Exit 0 delivered, 100 permanent failure, 111 temporary failure; one line
// on stdout says why. See local-deliver(8).
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "exitcodes.hpp"
#include "header.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "maildir.hpp"
#include "mbox.hpp"
#include "result.hpp"

using namespace yubin;

namespace {

struct Args {
    std::string user, home, local, dash, ext, domain, sender, defaultdelivery;
};

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

DeliveryResult deliver_to(const std::string& target, const Args& a, std::string_view prefix,
                          std::string_view message) {
    std::string_view rel = target;
    while (rel.substr(0, 2) == "./") rel.remove_prefix(2);
    std::string path = target[0] == '/' ? target : a.home + "/" + std::string(rel);
    if (target.back() == '/') return maildir_deliver(path.substr(0, path.size() - 1), prefix, message);
    return mbox_deliver(path, a.sender, ::time(nullptr), prefix, message);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 9) {
        std::fputs("usage: local-deliver USER HOME LOCAL DASH EXT DOMAIN SENDER DEFAULTDELIVERY\n", stderr);
        finish(DeliveryResult::temporary("4.3.5", "local-deliver called with bad arguments"));
    }
    Args a{argv[1], argv[2], argv[3], argv[4], argv[5], argv[6], argv[7], argv[8]};
    if (a.home.empty() || a.home[0] != '/' || ::chdir(a.home.c_str()) < 0)
        finish(DeliveryResult::temporary("4.2.0", "cannot enter home directory " + a.home));
    if (a.defaultdelivery.empty())
        finish(DeliveryResult::temporary("4.3.5", "empty default delivery"));

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

    const std::string prefix = "Return-Path: <" + a.sender + ">\nDelivered-To: " + recipient + "\n";
    finish(deliver_to(a.defaultdelivery, a, prefix, message));
}
