// The users of a system instance, and giving up root for one of them.
//
// A system instance (yubin-setup --system, run as root) has four users of
// its own, qmail-style; a single-user instance has none (every program runs
// as the instance's owner). See yubin-setup(8).
#pragma once
#include <optional>
#include <string>
#include <sys/types.h>

namespace yubin {

namespace system_user {
// Owns queue/ (group too); queue-inject is setuid to it and queue-manager runs as it.
inline constexpr const char* queue = "yubinq";
// smtpd runs as it (yubin-listen -u/-g, tcpserver -u/-g).
inline constexpr const char* smtpd = "yubind";
// remote-spawn and remote-deliver run as it, with the queue's group, to read messages.
inline constexpr const char* remote = "yubinr";
// Owns the virtual mailboxes (home/, alias/; users/ is root's with its group); local-deliver runs as it
// for them, pop3d too.
inline constexpr const char* mailbox = "yubinv";
}  // namespace system_user

struct Ids {
    uid_t uid;
    gid_t gid;
};

// The uid and primary gid of a user from the password database, or nullopt.
std::optional<Ids> lookup_user(const std::string& name);

// Become uid/gid for good: no supplementary groups, then the group, then
// the user; checks that root cannot be taken back. Returns 0 or an errno
// value. Only system calls, so a forked child may call it before exec.
int become(Ids ids);

// Is this a system instance seen by root? When we run as root and the
// instance's queue/ belongs to the user queue_user (yubin-setup --system
// gives it to yubinq): the uid and gid of queue/, which queue-manager runs
// as. Otherwise nullopt: a single-user instance, root's own or a user's,
// has its queue owned by its owner. Throws SysError when queue/ cannot be
// examined.
// Does root own this directory (root's own single-user instance, where
// every program runs as root)? Throws SysError if it cannot be stat'ed.
bool owned_by_root(const std::string& dir);

std::optional<Ids> system_queue_owner(const std::string& queue_dir, const char* queue_user = system_user::queue);

// Run by root: until destroyed, act (effective uid and gid) as the owner
// of dir, so that what root makes inside a directory another user owns is
// made with that user's rights and belongs to that user; a symbolic link
// planted there then leads nowhere root could write. Otherwise (not root,
// or dir belongs to root) nothing changes. Throws SysError.
class ActAsOwnerOf {
public:
    explicit ActAsOwnerOf(const std::string& dir);
    ~ActAsOwnerOf();
    ActAsOwnerOf(const ActAsOwnerOf&) = delete;
    ActAsOwnerOf& operator=(const ActAsOwnerOf&) = delete;

private:
    bool switched_ = false;
};

}  // namespace yubin

