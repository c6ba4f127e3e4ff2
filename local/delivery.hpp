// local-deliver's work: carrying out delivery instructions (.qmail lines,
// .forward and alias entries) for one recipient. See local-deliver(8).
#pragma once
#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "dotqmail.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "result.hpp"

namespace yubin {

// The arguments of local-deliver.
struct DeliveryArgs {
    std::string user, home, local, dash, ext, domain, sender, defaultdelivery;
};

class LocalDelivery {
public:
    LocalDelivery(const Instance& inst, DeliveryArgs rcpt, std::string message, char sep);
    LocalDelivery(const LocalDelivery&) = delete;
    LocalDelivery& operator=(const LocalDelivery&) = delete;

    // For a -default file: DEFAULT, the part of the extension it matched.
    void set_default_part(std::string part);
    // The envelope sender of forwarded copies (NEWSENDER).
    void set_newsender(std::string s) { newsender_ = std::move(s); }
    const std::string& newsender() const { return newsender_; }

    // Carries out the instructions of `source` in order, then injects one
    // queue entry for every forwarding address met. forward_file: the list
    // comes from .forward (an entry naming the recipient is "\user").
    DeliveryResult run(const std::vector<Instruction>& list, const std::string& source, bool forward_file);
    // The default delivery (control/defaultdelivery, .qmail syntax).
    DeliveryResult run_default();

private:
    // One instruction; ok() to go on. Sets stop_ for exit 99.
    DeliveryResult step(const Instruction& in, const std::string& source, bool forward_file, int depth);
    DeliveryResult steps(const std::vector<Instruction>& list, const std::string& source, bool forward_file,
                         int depth);
    DeliveryResult to_mailbox(const Instruction& in, const std::string& where);
    DeliveryResult to_program(const Instruction& in, const std::string& where);
    DeliveryResult include(const Instruction& in, const std::string& where, bool forward_file, int depth);
    DeliveryResult add_forward(const std::string& address, const std::string& where);
    DeliveryResult inject_forwards();
    bool names_recipient(const std::string& address) const;
    const std::string& me();
    std::string summary() const;

    const Instance& inst_;
    DeliveryArgs rcpt_;
    std::string message_;
    char sep_;
    std::string newsender_;
    bool has_default_ = false;
    std::string default_part_;
    Fd message_fd_;              // the message for programs (a memfd), made at the first program
    std::string me_;
    std::vector<std::string> forwards_;
    std::set<std::string> forward_keys_;
    bool stop_ = false;
    unsigned files_ = 0, programs_ = 0;
    std::string queue_id_;
};

}  // namespace yubin
