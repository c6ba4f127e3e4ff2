// The server side of TLS on OpenSSL, shared by smtpd and pop3d: the
// configuration (TLS 1.2 and 1.3 only, modern ciphers, server preference,
// no compression, no client renegotiation), certificates from control files
// with SNI, reloaded when they change, and one TLS connection on a pair of
// descriptors (fds 0 and 1 of a tcpserver-style program).
//
// Control files (yubin-control(5)):
//   control/tlscert   the certificate chain in PEM, the server's certificate
//                     first; it may also hold the private key
//   control/tlskey    the private key in PEM (else the key in tlscert)
//   control/tlssni    one line per host name with its own certificate:
//                     "NAME CHAINFILE [KEYFILE]", files relative to control/;
//                     ".example.com" stands for every name below example.com
// A service may have its own of each (pop3d: control/pop3tlscert,
// pop3tlskey, pop3tlssni), used where it exists, so that servers that run
// as different users each read a key of their own.
#pragma once
#include <openssl/ssl.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace yubin {

class Instance;

struct SslCtxDeleter { void operator()(SSL_CTX* c) const { SSL_CTX_free(c); } };
struct SslDeleter { void operator()(SSL* s) const { SSL_free(s); } };
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// Session tickets that every process of a service can read (RFC 5077,
// RFC 8446 section 4.6.1): INSTANCE/tls/SERVICE-tickets holds two keys,
// the newest first, each a 16-byte name, a 32-byte AES-256 key and a
// 32-byte HMAC-SHA256 key. yubin-start makes the file and puts a new key in
// front every hour (the oldest goes), so a ticket is good for two hours at
// most and then on any of the service's processes. Without the file each
// process has keys of its own.
struct TicketKey {
    unsigned char name[16], aes[32], hmac[32];
};
inline constexpr size_t ticket_keys = 2;
// Writes path anew: a new random key, then the newest one the file held
// (or another new one), owned by uid:gid with mode 0640. Throws SysError.
void rotate_ticket_keys(const std::string& path, uid_t uid, gid_t gid);

// The text of OpenSSL's error queue (emptied), or what when it is empty.
std::string tls_errors(std::string_view what);

// One certificate: the files it came from and what they were when read.
struct TlsCertFiles {
    std::string name;       // "" for the default, else an SNI name (".example.com" for a suffix)
    std::string chain, key; // paths; key may equal chain
};

// The server's TLS configuration from an instance's control files. Cheap
// to keep: refresh() looks at the files again (a stat each) and rebuilds
// the contexts when one changed, so that a long-lived server uses a new
// certificate from its next session on.
class TlsServer {
public:
    // prefix: of the service's own control files ("pop3"), or "";
    // tickets: the service's name for its ticket keys (tls/NAME-tickets), or "".
    explicit TlsServer(const Instance& inst, std::string prefix = "", std::string tickets = "");
    ~TlsServer();
    TlsServer(const TlsServer&) = delete;   // the SNI and ticket callbacks hold its address
    TlsServer& operator=(const TlsServer&) = delete;
    // Reads the control files again if they changed. false: TLS is not
    // available (no control/tlscert, or a file that cannot be used: then
    // error() says why, and the caller logs it).
    bool refresh();
    bool available() const { return bool(default_); }
    const std::string& error() const { return error_; }
    // A new TLS connection (server side) on these descriptors; they are
    // made non-blocking. nullptr only when OpenSSL fails.
    SslPtr accept_on(int rfd, int wfd) const;

    // Built from the files, for tests and for refresh(): throws std::runtime_error.
    static SslCtxPtr make_context(const TlsCertFiles& files);

private:
    struct Entry {
        std::string name;
        SslCtxPtr ctx;
    };
    static int on_servername(SSL* ssl, int* alert, void* arg);
    static int on_ticket_key(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                             EVP_MAC_CTX* mac, int encrypt);
    void use_ticket_keys(SSL_CTX* ctx);
    SSL_CTX* for_name(std::string_view host) const;
    std::string signature() const;   // what the files are now (inode, size, mtime)
    std::vector<TlsCertFiles> read_config() const;
    std::string control(const std::string& name) const;   // the service's name for it if that file exists, else name

    const Instance& inst_;
    std::string service_;
    std::string tickets_path_;            // "" without shared ticket keys
    std::vector<TicketKey> ticket_keys_;  // the newest first; empty: OpenSSL's own, per process
    std::vector<TlsCertFiles> files_;  // what the contexts came from
    std::string loaded_signature_;   // of the files the contexts came from; "" before the first load
    SslCtxPtr default_;
    std::vector<Entry> sni_;
    std::string error_;
};

// One TLS connection on a pair of non-blocking descriptors. Reads and
// writes never block; handshake(), write_all() and shutdown() wait, each
// at most the given time, with poll(2).
class TlsStream {
public:
    enum class Io { ok, again, eof, error };

    TlsStream(SslPtr ssl, int rfd, int wfd) : ssl_(std::move(ssl)), rfd_(rfd), wfd_(wfd) {}
    // The server side of the handshake, at most timeout_ms. false: error() says why.
    bool handshake(int timeout_ms);
    // Some bytes into buf: ok with n > 0, again (nothing yet: wait for the
    // read descriptor, or the write one when wants_write()), eof, error.
    Io read(char* buf, size_t size, size_t& n);
    // Some of data without waiting: ok with n > 0, again (wait for the
    // write descriptor, or the read one when wants_read()), error.
    Io write(const char* data, size_t size, size_t& n);
    // Everything, within timeout_ms. false: the client is gone or too slow.
    bool write_all(std::string_view data, int timeout_ms);
    // Decrypted bytes OpenSSL holds that no poll(2) would announce.
    bool pending() const { return SSL_pending(ssl_.get()) > 0; }
    bool wants_write() const { return want_write_; }   // after read() gave again
    bool wants_read() const { return want_read_; }     // after write() gave again
    int rfd() const { return rfd_; }
    int wfd() const { return wfd_; }
    // The close_notify alert, best effort, at most timeout_ms.
    void shutdown(int timeout_ms);
    // "TLSv1.3", "TLS_AES_256_GCM_SHA384", the secret bits of the cipher.
    std::string version() const;
    std::string cipher() const;
    int cipher_bits() const;
    std::string server_name() const;   // what the client asked for by SNI, or ""
    const std::string& error() const { return error_; }

private:
    bool wait(int err, int timeout_ms);   // for SSL_ERROR_WANT_READ/WRITE; false on timeout
    SslPtr ssl_;
    int rfd_, wfd_;
    bool want_write_ = false, want_read_ = false;
    std::string error_;
};

// Copies bytes both ways between a TLS connection and a plain descriptor
// (a socketpair to a program that speaks the protocol in clear) until the
// program closes its end or the client goes away. Each wait is at most
// timeout_ms. Used by pop3d, whose mailbox session is a program of its own.
void tls_relay(TlsStream& tls, int plain_fd, int timeout_ms);

}  // namespace yubin
