#include "tls.hpp"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "instance.hpp"
#include "io.hpp"

namespace yubin {

namespace {

// TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's
// "intermediate" list): no RC4, 3DES, CBC, export, anonymous or static-RSA
// suites. TLS 1.3 keeps OpenSSL's suites, which are all of that kind.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

long now_ms() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

std::string file_signature(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) < 0) return path + ":-;";
    return path + ":" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
           std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + ";";
}

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

// Does a host name match an SNI entry ("mail.example.com", or ".example.com"
// for the names below example.com)? Both lower case.
bool name_matches(std::string_view entry, std::string_view host) {
    if (!entry.empty() && entry.front() == '.')
        return host.size() > entry.size() && host.substr(host.size() - entry.size()) == entry;
    return entry == host;
}

}  // namespace

std::string tls_errors(std::string_view what) {
    std::string out;
    char buf[256];
    while (unsigned long e = ERR_get_error()) {
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out.empty() ? std::string(what) : std::string(what) + ": " + out;
}

SslCtxPtr TlsServer::make_context(const TlsCertFiles& files) {
    ERR_clear_error();
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) throw std::runtime_error(tls_errors("SSL_CTX_new"));
    SSL_CTX* c = ctx.get();
    if (!SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) || !SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION))
        throw std::runtime_error(tls_errors("TLS versions"));
    // SMTP and POP3 frame their own data (".", QUIT): a peer that closes
    // without close_notify truncates nothing we would take as complete.
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (!SSL_CTX_set_cipher_list(c, tls12_ciphers)) throw std::runtime_error(tls_errors("cipher list"));
    SSL_CTX_set_dh_auto(c, 1);
    // Partial writes like write(2); buffers given back while a session is idle.
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char sid_ctx[] = "yubin";
    SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_num_tickets(c, 1);   // session tickets on; one is enough for a mail client
    if (SSL_CTX_use_certificate_chain_file(c, files.chain.c_str()) != 1)
        throw std::runtime_error(tls_errors("certificate chain " + files.chain));
    if (SSL_CTX_use_PrivateKey_file(c, files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            throw std::runtime_error(tls_errors("the private key " + files.key + " does not belong to " + files.chain));
        throw std::runtime_error(tls_errors("private key " + files.key));
    }
    if (SSL_CTX_check_private_key(c) != 1)
        throw std::runtime_error(tls_errors("the key " + files.key + " does not belong to " + files.chain));
    return ctx;
}

TlsServer::TlsServer(const Instance& inst, std::string prefix, std::string tickets)
    : inst_(inst), service_(std::move(prefix)),
      tickets_path_(tickets.empty() ? "" : inst.path("tls/" + tickets + "-tickets")) {}

TlsServer::~TlsServer() {
    if (!ticket_keys_.empty()) OPENSSL_cleanse(ticket_keys_.data(), ticket_keys_.size() * sizeof(TicketKey));
}

namespace {

std::vector<TicketKey> read_ticket_keys(const std::string& path) {
    std::vector<TicketKey> keys;
    if (path.empty()) return keys;
    std::optional<std::string> data;
    try {
        data = read_file(path, 4096);
    } catch (const SysError&) {   // unreadable (not ours yet): keys of our own
        return keys;
    }
    if (!data || data->size() != ticket_keys * sizeof(TicketKey)) return keys;   // absent or not ours: per process
    keys.resize(ticket_keys);
    std::memcpy(keys.data(), data->data(), data->size());
    OPENSSL_cleanse(data->data(), data->size());
    return keys;
}

}  // namespace

void rotate_ticket_keys(const std::string& path, uid_t uid, gid_t gid) {
    std::vector<TicketKey> keys = read_ticket_keys(path);
    TicketKey fresh[2];
    if (RAND_bytes(reinterpret_cast<unsigned char*>(fresh), sizeof fresh) != 1)
        throw std::runtime_error(tls_errors("RAND_bytes"));
    std::string out(reinterpret_cast<char*>(&fresh[0]), sizeof(TicketKey));
    out.append(keys.empty() ? reinterpret_cast<char*>(&fresh[1]) : reinterpret_cast<char*>(&keys[0]),
               sizeof(TicketKey));
    OPENSSL_cleanse(fresh, sizeof fresh);
    if (!keys.empty()) OPENSSL_cleanse(keys.data(), keys.size() * sizeof(TicketKey));
    const std::string tmp = path + ".new";
    ::unlink(tmp.c_str());
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) throw SysError("open " + tmp, errno);
    if (::fchown(fd.get(), uid, gid) < 0 && ::geteuid() == 0) throw SysError("chown " + tmp, errno);
    if (::fchmod(fd.get(), 0640) < 0) throw SysError("chmod " + tmp, errno);
    write_all(fd.get(), out);
    OPENSSL_cleanse(out.data(), out.size());
    fd.reset();
    if (::rename(tmp.c_str(), path.c_str()) < 0) throw SysError("rename " + tmp, errno);
}

int TlsServer::on_ticket_key(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                             EVP_MAC_CTX* mac, int encrypt) {
    const auto* self = static_cast<const TlsServer*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    if (!self || self->ticket_keys_.empty()) return encrypt ? -1 : 0;
    const TicketKey* key = nullptr;
    size_t index = 0;
    if (encrypt) {
        key = &self->ticket_keys_[0];
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
        std::memcpy(name, key->name, sizeof key->name);
    } else {
        for (index = 0; index < self->ticket_keys_.size(); ++index)
            if (CRYPTO_memcmp(name, self->ticket_keys_[index].name, sizeof key->name) == 0) break;
        if (index == self->ticket_keys_.size()) return 0;   // unknown or expired: a full handshake
        key = &self->ticket_keys_[index];
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac), sizeof key->hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
    if (encrypt) return EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes, iv) == 1 ? 1 : -1;
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes, iv) != 1) return -1;
    return index == 0 ? 1 : 2;   // 2: good, but made with the older key: a new ticket follows
}

void TlsServer::use_ticket_keys(SSL_CTX* ctx) {
    SSL_CTX_set_app_data(ctx, this);
    if (!ticket_keys_.empty()) SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
}

std::string TlsServer::control(const std::string& name) const {
    if (!service_.empty() && exists(inst_.control_path(service_ + name))) return service_ + name;
    return name;
}

std::vector<TlsCertFiles> TlsServer::read_config() const {
    std::vector<TlsCertFiles> out;
    const std::string chain = inst_.control_path(control("tlscert"));
    if (!exists(chain)) return out;   // TLS is not configured
    const std::string key = inst_.control_path(control("tlskey"));
    out.push_back({"", chain, exists(key) ? key : chain});
    const std::string sni_file = control("tlssni");
    for (const std::string& line : inst_.control_lines(sni_file)) {
        const std::vector<std::string> words = split_words(line);
        if (words.size() < 2 || words.size() > 3)
            throw std::runtime_error("control/" + sni_file + ": expected NAME CHAINFILE [KEYFILE]: " + line);
        auto in_control = [this](const std::string& f) { return f.front() == '/' ? f : inst_.control_path(f); };
        TlsCertFiles f{lowercase(words[0]), in_control(words[1]), in_control(words.size() == 3 ? words[2] : words[1])};
        out.push_back(std::move(f));
    }
    return out;
}

std::string TlsServer::signature() const {
    std::string sig;
    for (const char* name : {"tlscert", "tlskey", "tlssni"}) {
        sig += file_signature(inst_.control_path(name));
        if (!service_.empty()) sig += file_signature(inst_.control_path(service_ + name));
    }
    if (!tickets_path_.empty()) sig += file_signature(tickets_path_);
    for (const TlsCertFiles& f : files_) sig += file_signature(f.chain) + file_signature(f.key);
    return sig;
}

bool TlsServer::refresh() {
    std::string now = signature();
    if (!loaded_signature_.empty() && now == loaded_signature_) return false;
    default_.reset();
    sni_.clear();
    error_.clear();
    try {
        files_ = read_config();
        if (!ticket_keys_.empty()) OPENSSL_cleanse(ticket_keys_.data(), ticket_keys_.size() * sizeof(TicketKey));
        ticket_keys_ = read_ticket_keys(tickets_path_);
        std::vector<Entry> sni;
        SslCtxPtr def;
        for (const TlsCertFiles& f : files_) {
            SslCtxPtr ctx = make_context(f);
            use_ticket_keys(ctx.get());
            if (f.name.empty()) def = std::move(ctx);
            else sni.push_back({f.name, std::move(ctx)});
        }
        if (def) {
            SSL_CTX_set_tlsext_servername_callback(def.get(), on_servername);
            SSL_CTX_set_tlsext_servername_arg(def.get(), this);
        }
        default_ = std::move(def);
        sni_ = std::move(sni);
    } catch (const std::exception& e) {
        error_ = e.what();
        default_.reset();
        sni_.clear();
    }
    // What the files were before they were read: one that changed while it
    // was being read is read again at the next refresh.
    loaded_signature_ = now;
    return true;
}

SSL_CTX* TlsServer::for_name(std::string_view host) const {
    std::string h = lowercase(host);
    for (const Entry& e : sni_)   // an exact name before a suffix, else the first that matches
        if (e.name == h) return e.ctx.get();
    for (const Entry& e : sni_)
        if (name_matches(e.name, h)) return e.ctx.get();
    return nullptr;
}

int TlsServer::on_servername(SSL* ssl, int*, void* arg) {
    const auto* self = static_cast<const TlsServer*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_NOACK;
    if (SSL_CTX* ctx = self->for_name(name)) SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;   // an unknown name gets the default certificate
}

SslPtr TlsServer::accept_on(int rfd, int wfd) const {
    if (!default_) return nullptr;
    SslPtr ssl(SSL_new(default_.get()));
    if (!ssl) return nullptr;
    set_nonblock(rfd);
    if (wfd != rfd) set_nonblock(wfd);
    // Each reply goes out in one write; without Nagle a reply does not wait
    // for the client's delayed ACK of the session ticket sent just before
    // it (40 ms on loopback). Not a socket (a pipe in tests): no matter.
    int one = 1;
    ::setsockopt(wfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (SSL_set_rfd(ssl.get(), rfd) != 1 || SSL_set_wfd(ssl.get(), wfd) != 1) return nullptr;
    SSL_set_accept_state(ssl.get());
    return ssl;
}

bool TlsStream::wait(int err, int timeout_ms) {
    pollfd p{err == SSL_ERROR_WANT_WRITE ? wfd_ : rfd_, static_cast<short>(err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
    for (;;) {
        int r = ::poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        return r > 0;
    }
}

bool TlsStream::handshake(int timeout_ms) {
    const long deadline = now_ms() + timeout_ms;
    for (;;) {
        ERR_clear_error();
        int r = SSL_accept(ssl_.get());
        if (r == 1) return true;
        int err = SSL_get_error(ssl_.get(), r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if (!wait(err, static_cast<int>(deadline - now_ms()))) {
                error_ = "handshake timed out";
                return false;
            }
            continue;
        }
        // With SSL_OP_IGNORE_UNEXPECTED_EOF, OpenSSL 3 reports the client's
        // end of file as ZERO_RETURN; without it, as SYSCALL with no error.
        if (err == SSL_ERROR_ZERO_RETURN && ERR_peek_error() == 0)
            error_ = "the client closed the connection during the handshake";
        else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
            error_ = r == 0 || errno == 0 ? "the client closed the connection during the handshake"
                                          : std::string("handshake: ") + std::strerror(errno);
        else
            error_ = tls_errors("handshake");
        return false;
    }
}

TlsStream::Io TlsStream::read(char* buf, size_t size, size_t& n) {
    ERR_clear_error();
    want_write_ = false;
    int r = SSL_read(ssl_.get(), buf, static_cast<int>(size > (1u << 30) ? (1u << 30) : size));
    if (r > 0) {
        n = static_cast<size_t>(r);
        return Io::ok;
    }
    switch (SSL_get_error(ssl_.get(), r)) {
    case SSL_ERROR_WANT_READ: return Io::again;
    case SSL_ERROR_WANT_WRITE: want_write_ = true; return Io::again;
    case SSL_ERROR_ZERO_RETURN: return Io::eof;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0 && (r == 0 || errno == ECONNRESET || errno == EPIPE)) return Io::eof;
        [[fallthrough]];
    default:
        error_ = tls_errors("read");
        return Io::error;
    }
}

TlsStream::Io TlsStream::write(const char* data, size_t size, size_t& n) {
    ERR_clear_error();
    want_read_ = false;
    int r = SSL_write(ssl_.get(), data, static_cast<int>(size > (1u << 30) ? (1u << 30) : size));
    if (r > 0) {
        n = static_cast<size_t>(r);
        return Io::ok;
    }
    switch (SSL_get_error(ssl_.get(), r)) {
    case SSL_ERROR_WANT_WRITE: return Io::again;
    case SSL_ERROR_WANT_READ: want_read_ = true; return Io::again;
    default: error_ = tls_errors("write"); return Io::error;
    }
}

bool TlsStream::write_all(std::string_view data, int timeout_ms) {
    const long deadline = now_ms() + timeout_ms;
    while (!data.empty()) {
        ERR_clear_error();
        int r = SSL_write(ssl_.get(), data.data(), static_cast<int>(data.size() > (1u << 30) ? (1u << 30) : data.size()));
        if (r > 0) {
            data.remove_prefix(static_cast<size_t>(r));
            continue;
        }
        int err = SSL_get_error(ssl_.get(), r);
        if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && wait(err, static_cast<int>(deadline - now_ms())))
            continue;
        error_ = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? "write timed out" : tls_errors("write");
        return false;
    }
    return true;
}

void TlsStream::shutdown(int timeout_ms) {
    const long deadline = now_ms() + timeout_ms;
    for (;;) {
        ERR_clear_error();
        int r = SSL_shutdown(ssl_.get());
        if (r >= 0) return;   // our close_notify is sent; the client's is not waited for
        int err = SSL_get_error(ssl_.get(), r);
        if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) return;
        if (!wait(err, static_cast<int>(deadline - now_ms()))) return;
    }
}

std::string TlsStream::version() const { return SSL_get_version(ssl_.get()); }

std::string TlsStream::cipher() const {
    const SSL_CIPHER* c = SSL_get_current_cipher(ssl_.get());
    return c ? SSL_CIPHER_get_name(c) : "";
}

int TlsStream::cipher_bits() const {
    const SSL_CIPHER* c = SSL_get_current_cipher(ssl_.get());
    return c ? SSL_CIPHER_get_bits(c, nullptr) : 0;
}

std::string TlsStream::server_name() const {
    const char* n = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
    return n ? n : "";
}

void tls_relay(TlsStream& tls, int plain, int timeout_ms) {
    set_nonblock(plain);
    constexpr size_t high_water = 256 * 1024;   // from the client, not yet taken by the program
    std::string to_plain;
    bool tls_open = true;
    char buf[16384];
    for (;;) {
        bool progress = false;
        short tls_events = 0, plain_events = 0;
        if (tls_open && to_plain.size() < high_water) {
            size_t n = 0;
            switch (tls.read(buf, sizeof buf, n)) {
            case TlsStream::Io::ok: to_plain.append(buf, n); progress = true; break;
            case TlsStream::Io::again: tls_events |= tls.wants_write() ? POLLOUT : POLLIN; break;
            case TlsStream::Io::eof:
            case TlsStream::Io::error: tls_open = false; progress = true; break;
            }
        }
        if (!to_plain.empty()) {
            ssize_t w = ::write(plain, to_plain.data(), to_plain.size());
            if (w > 0) {
                to_plain.erase(0, static_cast<size_t>(w));
                progress = true;
            } else if (w < 0 && errno == EAGAIN) {
                plain_events |= POLLOUT;
            } else if (w < 0 && errno != EINTR) {
                return;   // the program is gone
            }
        } else if (!tls_open) {
            return;   // the client is gone: our closing the plain end tells the program
        }
        ssize_t r = ::read(plain, buf, sizeof buf);
        if (r > 0) {
            if (!tls.write_all(std::string_view(buf, static_cast<size_t>(r)), timeout_ms)) return;
            progress = true;
        } else if (r == 0) {
            tls.shutdown(1000);   // the program ended the session
            return;
        } else if (errno == EAGAIN) {
            plain_events |= POLLIN;
        } else if (errno != EINTR) {
            return;
        }
        if (progress || tls.pending()) continue;
        pollfd p[3];
        nfds_t n = 0;
        if (tls_events & POLLIN) p[n++] = {tls.rfd(), POLLIN, 0};
        if (tls_events & POLLOUT) p[n++] = {tls.wfd(), POLLOUT, 0};
        p[n++] = {plain, plain_events, 0};
        int pr = ::poll(p, n, timeout_ms);
        if (pr == 0) return;   // nothing moved for the whole timeout
        if (pr < 0 && errno != EINTR) return;
    }
}

}  // namespace yubin
