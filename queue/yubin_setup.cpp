// yubin-setup --single-user DIR | --system DIR [--hostname NAME]: creates
// an instance. See yubin-setup(8).
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "instance.hpp"
#include "io.hpp"
#include "maildir.hpp"
#include "privileges.hpp"

using namespace yubin;
namespace fs = std::filesystem;

namespace {

const char* const programs[] = {"queue-inject", "queue-injectd", "queue-manager", "local-spawn", "local-deliver",
                                "yubin-start", "yubin-setup", "yubin-user", "yubin-newaliases", "sendmail", "mailq", "smtpd", "yubin-listen",
                                "pop3d", "remote-spawn", "remote-deliver", "yubin-checkpassword", "yubin-authd"};

int usage() {
    std::fputs("usage: yubin-setup --single-user DIR [--hostname NAME]\n"
               "       yubin-setup --system DIR [--hostname NAME]   (as root)\n", stderr);
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

// --system: DIR and every directory above it must belong to root and be
// writable by nobody else (a sticky /tmp is fine), or another user could
// swap the programs or the queue under the setuid queue-inject.
void check_ancestors(const std::string& dir) {
    for (std::string d = dir;; d = dirname_of(d)) {
        struct stat st;
        if (::stat(d.c_str(), &st) < 0) throw SysError("stat " + d, errno);
        if (st.st_uid != 0) throw std::runtime_error(d + " is not owned by root");
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
            throw std::runtime_error(d + " is writable by others than root");
        if (d == "/") return;
    }
}

// The user NAME, created by useradd when missing, with its own group (the
// existing group of that name, if a removed user left one behind).
Ids system_user_ids(const char* name, const std::string& home) {
    if (!lookup_user(name)) {
        std::vector<const char*> argv = {"useradd", "--system", "--no-create-home", "--home-dir", home.c_str(),
                                         "--shell", "/usr/sbin/nologin"};
        if (::getgrnam(name)) argv.insert(argv.end(), {"--gid", name});
        else argv.push_back("--user-group");
        argv.insert(argv.end(), {name, nullptr});
        pid_t pid;
        int rc = ::posix_spawn(&pid, "/usr/sbin/useradd", nullptr, nullptr, const_cast<char* const*>(argv.data()),
                               environ);
        if (rc != 0) throw SysError("cannot run /usr/sbin/useradd", rc);
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            throw std::runtime_error(std::string("useradd ") + name + " failed");
    }
    auto ids = lookup_user(name);
    if (!ids) throw std::runtime_error(std::string("no user ") + name + " after useradd");
    if (ids->uid == 0 || ids->gid == 0) throw std::runtime_error(std::string(name) + " has uid or gid 0");
    return *ids;
}

// --system on a directory that exists: it must be a real directory of
// root's (a first run, or an instance root made). A user's single-user
// instance is not converted in place: its owner could swap a directory for
// a symbolic link while root works inside it.
void check_existing_dir(const std::string& dir) {
    struct stat st;
    if (::lstat(dir.c_str(), &st) < 0) {
        if (errno == ENOENT) return;
        throw SysError("stat " + dir, errno);
    }
    if (!S_ISDIR(st.st_mode)) throw std::runtime_error(dir + " is not a directory");
    if (st.st_uid != 0)
        throw std::runtime_error(dir + " belongs to uid " + std::to_string(st.st_uid) +
                                 ": make the system instance in a new directory and move the mail over");
}

// Ownership and modes change without following symbolic links: on a second
// run, queue/ and home/ belong to other users, who might have put one there.
// A tree that already belongs to its user (a second run) is left alone:
// that user could swap a directory inside it for a link while we walk.
void chown_tree(const std::string& top, Ids ids) {
    struct stat st;
    if (::lstat(top.c_str(), &st) < 0) throw SysError("stat " + top, errno);
    if (!S_ISDIR(st.st_mode)) throw std::runtime_error(top + " is not a directory");
    if (st.st_uid == ids.uid && st.st_gid == ids.gid && ids.uid != 0) return;
    if (::lchown(top.c_str(), ids.uid, ids.gid) < 0) throw SysError("chown " + top, errno);
    for (const auto& e : fs::recursive_directory_iterator(top))
        if (::lchown(e.path().c_str(), ids.uid, ids.gid) < 0) throw SysError("chown " + e.path().string(), errno);
}

void set_mode(const std::string& path, mode_t mode) {
    struct stat st;
    if (::lstat(path.c_str(), &st) < 0) throw SysError("stat " + path, errno);
    if (S_ISLNK(st.st_mode)) throw std::runtime_error(path + " is a symbolic link");
    if (::fchmodat(AT_FDCWD, path.c_str(), mode, AT_SYMLINK_NOFOLLOW) < 0) throw SysError("chmod " + path, errno);
}

// The privilege split of a system instance (yubin-setup(8)): the queue
// belongs to yubinq, queue-injectd runs as yubinq with its socket in
// public/ (yubinq's, 0755), and queue-inject is setuid yubinq so that smtpd
// (yubind), sendmail (any user) and local-deliver (yubinv) can queue a
// message without being able to read the queue; tmp/ is setgid so that
// every queue file gets the group yubinq, which remote-spawn (yubinr) runs
// with to read them. Mailboxes and the alias home belong to yubinv; users/
// belongs to root with the group yubinv, so that local delivery (yubinv)
// can read where a mailbox is but nobody but root can change it. The
// passwords are checked by yubin-checkpassword alone, setgid yubinv, so
// that smtpd (yubind) asks it and never reads users/ itself.
void make_system(const std::string& dir) {
    Ids queue = system_user_ids(system_user::queue, dir + "/queue");
    Ids smtpd = system_user_ids(system_user::smtpd, dir);
    system_user_ids(system_user::remote, dir);
    Ids mailbox = system_user_ids(system_user::mailbox, dir + "/home");

    if (::lchown(dir.c_str(), 0, 0) < 0) throw SysError("chown " + dir, errno);
    set_mode(dir, 0755);
    for (const char* sub : {"/bin", "/control"}) {  // also what a single-user owner left there
        chown_tree(dir + sub, Ids{0, 0});
        set_mode(dir + sub, 0755);
    }
    chown_tree(dir + "/queue", queue);
    chown_tree(dir + "/public", queue);  // queue-injectd's socket: any local user may connect
    set_mode(dir + "/public", 0755);
    set_mode(dir + "/queue", 0750);
    set_mode(dir + "/queue/tmp", 02750);
    set_mode(dir + "/queue/new", 0750);
    set_mode(dir + "/queue/cur", 0750);
    set_mode(dir + "/queue/info", 0700);
    set_mode(dir + "/queue/lock", 0700);
    for (const char* sub : {"/home", "/alias"}) chown_tree(dir + sub, mailbox);
    chown_tree(dir + "/tls", Ids{0, 0});   // its files: root's with the group of the server that reads them
    set_mode(dir + "/tls", 0755);
    chown_tree(dir + "/auth", mailbox);  // yubin-authd's socket: it says who may ask (SO_PEERCRED)
    set_mode(dir + "/auth", 0755);
    chown_tree(dir + "/users", Ids{0, mailbox.gid});
    set_mode(dir + "/users", 0750);
    for (const auto& e : fs::directory_iterator(dir + "/users"))
        if (e.symlink_status().type() == fs::file_type::regular) set_mode(e.path(), 0640);

    std::string inject = dir + "/bin/queue-inject";
    if (::chown(inject.c_str(), queue.uid, queue.gid) < 0) throw SysError("chown " + inject, errno);
    set_mode(inject, 04711);  // after chown, which clears the setuid bit

    // TLS keys: smtpd (yubind) reads control/tlskey and the keys control/tlssni
    // names, pop3d (yubinv) its own: control/pop3tlskey and pop3tlssni's
    // (yubin-control(5)). Only files in control/ are changed.
    auto key_for = [&](const std::string& file, gid_t gid) {
        if (file.empty() || file[0] == '/' || file.find("..") != std::string::npos) return;
        std::string key = dir + "/control/" + file;
        struct stat st;
        if (::lstat(key.c_str(), &st) < 0 || !S_ISREG(st.st_mode)) return;
        if (::lchown(key.c_str(), 0, gid) < 0) throw SysError("chown " + key, errno);
        set_mode(key, 0640);
    };
    Instance inst(dir);
    for (auto [prefix, gid] : {std::pair{"", smtpd.gid}, std::pair{"pop3", mailbox.gid}}) {
        key_for(std::string(prefix) + "tlskey", gid);
        for (const std::string& line : inst.control_lines(std::string(prefix) + "tlssni")) {
            const std::vector<std::string> words = split_words(line);
            if (words.size() >= 2) key_for(words.back(), gid);   // KEYFILE, or the CHAINFILE that holds the key
        }
    }

    std::string checker = dir + "/bin/yubin-checkpassword";
    if (::chown(checker.c_str(), 0, mailbox.gid) < 0) throw SysError("chown " + checker, errno);
    set_mode(checker, 02755);
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir, hostname;
    bool single = false, system = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--single-user" && i + 1 < argc && !system) { single = true; dir = argv[++i]; }
        else if (a == "--system" && i + 1 < argc && !single) { system = true; dir = argv[++i]; }
        else if (a == "--hostname" && i + 1 < argc) hostname = argv[++i];
        else return usage();
    }
    if ((!single && !system) || dir.empty()) return usage();
    if (system && ::geteuid() != 0) {
        std::fputs("yubin-setup: --system needs root (it creates users and a setuid queue-inject)\n", stderr);
        return 77;
    }
    if (hostname.empty()) hostname = this_hostname();
    if (hostname.find_first_of(" \t\r\n/:") != std::string::npos) {
        std::fputs("yubin-setup: bad host name\n", stderr);
        return 64;
    }
    try {
        if (system) {  // before anything is made there
            char parent[PATH_MAX];
            std::string above = dirname_of(dir);
            if (!::realpath(above.c_str(), parent)) throw SysError("realpath " + above, errno);
            check_ancestors(parent);
            check_existing_dir(dir);
        }
        mkdir_mode(dir, 0755);
        char real[PATH_MAX];
        if (!::realpath(dir.c_str(), real)) throw SysError("realpath " + dir, errno);
        dir = real;
        char self[PATH_MAX];
        if (!::realpath("/proc/self/exe", self)) throw SysError("realpath /proc/self/exe", errno);
        const std::string from = dirname_of(self);

        for (const char* sub : {"bin", "control", "users", "home", "alias"}) mkdir_mode(dir + "/" + sub, 0755);
        ::chmod((dir + "/users").c_str(), 0700);
        mkdir_mode(dir + "/public", 0700);  // queue-injectd's socket (0755, yubinq's, in a system instance)
        mkdir_mode(dir + "/auth", 0700);    // yubin-authd's socket (0755, yubinv's, in a system instance)
        mkdir_mode(dir + "/tls", 0700);     // session ticket keys from yubin-start (0755, root's, in a system instance)
        mkdir_mode(dir + "/queue", 0700);
        {
            ActAsOwnerOf as(dir + "/queue");  // yubinq's, when this is run again on a system instance
            for (const char* sub : {"tmp", "new", "cur", "info", "lock"}) mkdir_mode(dir + "/queue/" + sub, 0700);
            std::string fifo = dir + "/queue/lock/trigger";
            if (::mkfifo(fifo.c_str(), 0622) < 0 && errno != EEXIST) throw SysError("mkfifo " + fifo, errno);
        }
        {
            ActAsOwnerOf as(dir + "/alias");  // yubinv's, when this is run again on a system instance
            maildir_create(dir + "/alias/Maildir");
        }

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
        if (::access(passwd.c_str(), F_OK) != 0) write_file_atomic(passwd, "", 0640);
        if (system) make_system(dir);
        fsync_dir(dir);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "yubin-setup: %s\n", e.what());
        return 111;
    }
    std::printf("yubin-setup: %s instance ready in %s\n", system ? "system" : "single-user", dir.c_str());
    return 0;
}
