// sendmail: the sendmail-compatible injection command. See sendmail(8).
#include <pwd.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "address.hpp"
#include "datetime.hpp"
#include "exitcodes.hpp"
#include "header.hpp"
#include "inject.hpp"
#include "instance.hpp"
#include "io.hpp"
#include "listing.hpp"

using namespace yubin;

namespace {

enum class Mode { deliver, smtp, print_queue };

struct Options {
    Mode mode = Mode::deliver;
    bool recipients_from_headers = false;   // -t
    bool dot_ends_message = true;           // cleared by -i / -oi
    bool sender_given = false;
    std::string sender;                     // -f / -r
    std::string fullname;                   // -F
    std::vector<std::string> recipients;
};

[[noreturn]] void fail(int code, const std::string& why) {
    std::fprintf(stderr, "sendmail: %s\n", why.c_str());
    std::exit(code);
}

// Options that take an argument, attached ("-fuser") or as the next word.
bool takes_argument(char c) { return std::strchr("fFrBNRVXhLCOp", c) != nullptr; }
// Options without an argument, which may be clustered as getopt allows
// ("-ti" is "-t -i", "-tf sender" is "-t -f sender").
bool is_switch(char c) { return std::strchr("tivnUmG", c) != nullptr; }

Options parse_options(int argc, char** argv) {
    Options o;
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--") { ++i; break; }
        if (a.size() < 2 || a[0] != '-') break;
        for (; a.size() > 2 && is_switch(a[1]); a.erase(1, 1)) {
            if (a[1] == 't') o.recipients_from_headers = true;
            if (a[1] == 'i') o.dot_ends_message = false;
        }
        char c = a[1];
        std::string arg;
        if (takes_argument(c)) {
            if (a.size() > 2) arg = a.substr(2);
            else if (i + 1 < argc) arg = argv[++i];
            else fail(sysexit::usage, "option -" + std::string(1, c) + " needs an argument");
        }
        switch (c) {
        case 't': o.recipients_from_headers = true; break;
        case 'i': o.dot_ends_message = false; break;
        case 'f': case 'r': o.sender = arg; o.sender_given = true; break;
        case 'F': o.fullname = arg; break;
        case 'b':
            if (a == "-bm") o.mode = Mode::deliver;
            else if (a == "-bs") o.mode = Mode::smtp;
            else if (a == "-bp") o.mode = Mode::print_queue;
            else fail(sysexit::usage, "unsupported mode " + a);
            break;
        case 'o':  // -oi matters; every other -o option is accepted and ignored
            if (a == "-oi") o.dot_ends_message = false;
            break;
        case 'B': case 'N': case 'R': case 'V': case 'X': case 'h': case 'L': case 'C': case 'O': case 'p':
        case 'v': case 'n': case 'U': case 'q': case 'G': case 'A': case 'd': case 'm': case 'e':
            break;  // accepted for compatibility, no effect
        default:
            fail(sysexit::usage, "unknown option " + a);
        }
    }
    for (; i < argc; ++i) o.recipients.emplace_back(argv[i]);
    return o;
}

// stdin up to EOF, or up to a line "." alone when dot_ends_message; CRLF
// becomes LF, and the text always ends with a line end.
std::string read_message(bool dot_ends_message) {
    std::string in;
    try {
        in = read_all(0);
    } catch (const SysError& e) {
        fail(sysexit::ioerr, std::string("reading the message: ") + e.what());
    }
    std::string out;
    out.reserve(in.size() + 1);
    size_t pos = 0;
    while (pos < in.size()) {
        size_t nl = in.find('\n', pos);
        size_t end = nl == std::string::npos ? in.size() : nl;
        std::string_view line(in.data() + pos, end - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        pos = end + 1;
        if (dot_ends_message && line == ".") break;
        out += line;
        out += '\n';
    }
    return out;
}

std::string login_name(std::string* gecos) {
    struct passwd* pw = ::getpwuid(::getuid());
    if (!pw) return std::to_string(::getuid());
    if (gecos && pw->pw_gecos) {
        *gecos = pw->pw_gecos;
        *gecos = gecos->substr(0, gecos->find(','));
    }
    return pw->pw_name;
}

std::string qualify(std::string addr, const std::string& host) {
    if (addr.find('@') == std::string::npos) addr += "@" + host;
    return addr;
}

// -f '<x>' and -f 'x' are the same; -f '<>' is the null sender.
std::string strip_brackets(std::string s) {
    s = trim(s);
    if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
    return s;
}

std::string display_name(const std::string& name) {
    bool atom = !name.empty();
    for (char c : name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr(" !#$%&'*+-/=?^_`{|}~", c))) atom = false;
    if (atom) return name;
    std::string q = "\"";
    for (char c : name) {
        if (c == '"' || c == '\\') q += '\\';
        if (c != '\r' && c != '\n') q += c;
    }
    return q + "\"";
}

int exit_for_inject(int code) {
    if (code == inject_exit::ok) return sysexit::ok;
    std::fprintf(stderr, "sendmail: queue-inject: %s\n", inject_exit::describe(code));
    if (code == inject_exit::no_config) return sysexit::config;
    if (inject_exit::is_permanent(code)) return sysexit::dataerr;
    return sysexit::tempfail;
}

int deliver(const Instance& inst, Options o) {
    const std::string defaulthost = inst.control_string("defaulthost", inst.control_string("me", "localhost"));
    const std::string idhost = inst.control_string("idhost", inst.control_string("me", "localhost"));
    std::string gecos;
    const std::string user = login_name(&gecos);

    std::string message = read_message(o.dot_ends_message);
    size_t body = 0;
    HeaderBlock headers = HeaderBlock::parse(message, body);

    Envelope env;
    if (o.sender_given) {
        std::string s = strip_brackets(o.sender);
        env.sender = s.empty() ? "" : qualify(s, defaulthost);
    } else {
        env.sender = user + "@" + defaulthost;
    }

    if (o.recipients_from_headers) {
        bool resent = false;
        for (const auto& f : headers.fields())
            if (lowercase(f.name).rfind("resent-", 0) == 0) resent = true;
        const char* const plain[] = {"To", "Cc", "Bcc"};
        const char* const resent_names[] = {"Resent-To", "Resent-Cc", "Resent-Bcc"};
        for (const char* name : resent ? resent_names : plain)
            for (const HeaderField* f : headers.find_all(name))
                for (auto& a : parse_address_list(unfold(f->value))) o.recipients.push_back(a);
        headers.remove_all("Bcc");
        headers.remove_all("Resent-Bcc");
    }
    for (auto& r : o.recipients) {
        r = qualify(strip_brackets(r), defaulthost);
        if (r.size() <= 1 || !address_is_storable(r)) fail(sysexit::dataerr, "bad recipient address: " + r);
        env.recipients.push_back(r);
    }
    if (env.recipients.empty()) fail(sysexit::dataerr, "no recipients");
    if (!address_is_storable(env.sender)) fail(sysexit::dataerr, "bad sender address");

    const time_t now = ::time(nullptr);
    if (!headers.has("From")) {
        std::string name = o.fullname.empty() ? gecos : o.fullname;
        std::string addr = user + "@" + defaulthost;
        headers.append("From", name.empty() ? addr : display_name(name) + " <" + addr + ">");
    }
    if (!headers.has("Date")) headers.append("Date", rfc5322_date(now));
    if (!headers.has("Message-ID")) {
        struct timeval tv;
        ::gettimeofday(&tv, nullptr);
        headers.append("Message-ID", "<" + std::to_string(tv.tv_sec) + "." + std::to_string(tv.tv_usec) + "." +
                                         std::to_string(::getpid()) + "@" + idhost + ">");
    }
    // The parse consumed the blank line after the header, if there was one.
    std::string text = headers.serialize() + "\n";
    text += std::string_view(message).substr(body);
    return exit_for_inject(run_queue_inject(inst, text, env));
}

// -bs: an SMTP session on stdin/stdout, served by the instance's smtpd as a
// local session that may send anywhere (the caller could anyway).
[[noreturn]] void run_smtp_session(const Instance& inst) {
    for (const char* v : {"TCPREMOTEIP", "TCPREMOTEHOST", "TCPREMOTEINFO", "TCPLOCALIP", "TCPLOCALHOST"})
        ::unsetenv(v);
    ::setenv("RELAYCLIENT", "", 1);
    std::string smtpd = inst.path("bin/smtpd");
    ::execl(smtpd.c_str(), "smtpd", static_cast<char*>(nullptr));
    fail(sysexit::oserr, "cannot run " + smtpd + ": " + std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse_options(argc, argv);
    std::optional<Instance> inst;
    try {
        inst = Instance::of_this_program();
    } catch (const std::exception& e) {
        fail(sysexit::config, e.what());
    }
    switch (o.mode) {
    case Mode::print_queue: return print_queue(*inst, stdout);
    case Mode::smtp: run_smtp_session(*inst);
    case Mode::deliver: break;
    }
    return deliver(*inst, std::move(o));
}
