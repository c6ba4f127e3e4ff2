// yubin-setup --single-user DIR [--hostname NAME]: creates an instance.
// See yubin-setup(8).
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "io.hpp"
#include "maildir.hpp"

using namespace yubin;
namespace fs = std::filesystem;

namespace {

const char* const programs[] = {"queue-inject", "queue-manager", "local-spawn", "local-deliver",
                                "yubin-start", "yubin-setup", "yubin-user", "yubin-newaliases", "sendmail", "mailq", "smtpd", "yubin-listen",
                                "pop3d", "remote-spawn", "remote-deliver"};

int usage() {
    std::fputs("usage: yubin-setup --single-user DIR [--hostname NAME]\n", stderr);
    return 64;
}

void mkdir_mode(const std::string& p, mode_t mode) {
    if (::mkdir(p.c_str(), mode) < 0 && errno != EEXIST) throw SysError("mkdir " + p, errno);
}

// A control file with a default, kept if it is already there.
void control(const std::string& dir, const std::string& name, const std::string& value) {
    std::string path = dir + "/control/" + name;
    if (::access(path.c_str(), F_OK) == 0) return;
    write_file_atomic(path, value, 0644);
}

std::string this_hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) < 0 || !buf[0]) return "localhost";
    return buf;
}

// Copy a program into DIR/bin through a temporary name, so that a running
// instance never sees a half-written binary.
void install_program(const std::string& from_dir, const std::string& to_dir, const char* name) {
    std::string tmp = to_dir + "/." + name + ".new";
    fs::copy_file(from_dir + "/" + name, tmp, fs::copy_options::overwrite_existing);
    ::chmod(tmp.c_str(), 0755);
    if (::rename(tmp.c_str(), (to_dir + "/" + name).c_str()) < 0) throw SysError("install " + std::string(name), errno);
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir, hostname;
    bool single = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--single-user" && i + 1 < argc) { single = true; dir = argv[++i]; }
        else if (a == "--hostname" && i + 1 < argc) hostname = argv[++i];
        else return usage();
    }
    if (!single || dir.empty()) return usage();
    if (hostname.empty()) hostname = this_hostname();
    if (hostname.find_first_of(" \t\r\n/:") != std::string::npos) {
        std::fputs("yubin-setup: bad host name\n", stderr);
        return 64;
    }
    try {
        mkdir_mode(dir, 0755);
        char real[PATH_MAX];
        if (!::realpath(dir.c_str(), real)) throw SysError("realpath " + dir, errno);
        dir = real;
        char self[PATH_MAX];
        if (!::realpath("/proc/self/exe", self)) throw SysError("realpath /proc/self/exe", errno);
        const std::string from = dirname_of(self);

        for (const char* sub : {"bin", "control", "users", "home", "alias"}) mkdir_mode(dir + "/" + sub, 0755);
        ::chmod((dir + "/users").c_str(), 0700);
        mkdir_mode(dir + "/queue", 0700);
        for (const char* sub : {"tmp", "new", "cur", "info", "lock"}) mkdir_mode(dir + "/queue/" + sub, 0700);
        std::string fifo = dir + "/queue/lock/trigger";
        if (::mkfifo(fifo.c_str(), 0622) < 0 && errno != EEXIST) throw SysError("mkfifo " + fifo, errno);
        maildir_create(dir + "/alias/Maildir");

        if (from != dir + "/bin")
            for (const char* p : programs) install_program(from, dir + "/bin", p);

        control(dir, "me", hostname + "\n");
        control(dir, "locals", hostname + "\nlocalhost\n");
        control(dir, "rcpthosts", hostname + "\nlocalhost\n");
        control(dir, "defaultdelivery", "./Maildir/\n");
        control(dir, "defaulthost", hostname + "\n");
        control(dir, "idhost", hostname + "\n");
        control(dir, "queuelifetime", "604800\n");
        control(dir, "concurrencylocal", "10\n");
        control(dir, "concurrencyremote", "20\n");
        control(dir, "timeoutconnect", "60\n");
        control(dir, "timeoutremote", "1200\n");
        control(dir, "minbackoff", "60\n");
        control(dir, "maxbackoff", "3600\n");
        control(dir, "doublebounceto", "postmaster\n");
        control(dir, "bouncefrom", "MAILER-DAEMON\n");
        std::string passwd = dir + "/users/passwd";
        if (::access(passwd.c_str(), F_OK) != 0) write_file_atomic(passwd, "", 0600);
        fsync_dir(dir);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "yubin-setup: %s\n", e.what());
        return 111;
    }
    std::printf("yubin-setup: instance ready in %s\n", dir.c_str());
    return 0;
}
