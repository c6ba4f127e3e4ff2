#include "tls.hpp"

#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "instance.hpp"
#include "io.hpp"
#include "temp_dir.hpp"

using namespace yubin;

namespace {

// A self-signed certificate for cn and its key, as PEM files.
void make_cert(const std::string& cert, const std::string& key, const std::string& cn) {
    EVP_PKEY* pkey = EVP_EC_gen("P-256");
    REQUIRE(pkey);
    X509* x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, name);
    REQUIRE(X509_sign(x, pkey, EVP_sha256()) > 0);
    FILE* f = std::fopen(cert.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
    f = std::fopen(key.c_str(), "w");
    PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
}

struct TlsInstance {
    test::TempDir dir;
    Instance inst{dir.path()};
    TlsInstance() { REQUIRE(::mkdir((dir / "control").c_str(), 0755) == 0); }
    std::string control(const std::string& n) const { return dir / ("control/" + n); }
};

// The server's side of a test connection on fd: the handshake, "ping" in, "pong" out.
void serve_ping(const TlsServer& server, int fd) {
    SslPtr ssl = server.accept_on(fd, fd);
    REQUIRE(ssl);
    TlsStream tls(std::move(ssl), fd, fd);
    if (!tls.handshake(5000)) return;
    char buf[16];
    size_t n = 0;
    for (int i = 0; i < 100; ++i) {
        if (tls.read(buf, sizeof buf, n) != TlsStream::Io::again) break;
        ::usleep(10000);
    }
    CHECK(std::string(buf, n) == "ping");
    CHECK(tls.write_all("pong", 5000));
}

// The subject CN of the certificate a client got, after a handshake on a
// socketpair with the server side of TlsServer (sni: the name asked for).
struct ClientResult {
    bool ok = false;
    std::string cn, version;
};

ClientResult handshake(const TlsServer& server, const char* sni, int client_max_version = 0) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    Fd s(sv[0]), c(sv[1]);
    ClientResult out;
    std::thread client([&] {
        SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
        if (client_max_version) SSL_CTX_set_max_proto_version(ctx.get(), client_max_version);
        SslPtr ssl(SSL_new(ctx.get()));
        SSL_set_fd(ssl.get(), c.get());
        if (sni) SSL_set_tlsext_host_name(ssl.get(), sni);
        if (SSL_connect(ssl.get()) == 1) {
            out.ok = true;
            out.version = SSL_get_version(ssl.get());
            X509* peer = SSL_get1_peer_certificate(ssl.get());
            char buf[256] = "";
            X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof buf);
            out.cn = buf;
            X509_free(peer);
            char b[5] = "";
            SSL_write(ssl.get(), "ping", 4);
            if (SSL_read(ssl.get(), b, 4) == 4) out.version += std::string(" ") + std::string(b, 4);
        }
        ::shutdown(c.get(), SHUT_WR);
    });
    serve_ping(server, s.get());
    client.join();
    return out;
}

}  // namespace

TEST_CASE("TlsServer: no certificate means no TLS, and no error", "[tls]") {
    TlsInstance t;
    TlsServer server(t.inst);
    CHECK(server.refresh());
    CHECK_FALSE(server.available());
    CHECK(server.error().empty());
    CHECK_FALSE(server.refresh());   // nothing changed
}

TEST_CASE("TlsServer serves the certificate of control/tlscert, TLS 1.2 and 1.3 only", "[tls]") {
    TlsInstance t;
    make_cert(t.control("tlscert"), t.control("tlskey"), "mx.example");
    TlsServer server(t.inst);
    server.refresh();
    REQUIRE(server.available());
    ClientResult r = handshake(server, nullptr);
    CHECK(r.ok);
    CHECK(r.cn == "mx.example");
    CHECK(r.version == "TLSv1.3 pong");
    CHECK(handshake(server, nullptr, TLS1_2_VERSION).version == "TLSv1.2 pong");
    CHECK_FALSE(handshake(server, nullptr, TLS1_1_VERSION).ok);
}

TEST_CASE("TlsServer: key and chain in one file", "[tls]") {
    TlsInstance t;
    make_cert(t.control("c.pem"), t.control("k.pem"), "one.example");
    write_file_atomic(t.control("tlscert"), *read_file(t.control("k.pem")) + *read_file(t.control("c.pem")));
    TlsServer server(t.inst);
    server.refresh();
    REQUIRE(server.available());
    CHECK(handshake(server, nullptr).cn == "one.example");
}

TEST_CASE("TlsServer chooses a certificate by SNI, and reloads changed files", "[tls]") {
    TlsInstance t;
    make_cert(t.control("tlscert"), t.control("tlskey"), "default.example");
    make_cert(t.control("a.pem"), t.control("a.key"), "mail.a.example");
    make_cert(t.control("b.pem"), t.control("b.key"), "wild.b.example");
    write_file_atomic(t.control("tlssni"), "# name chain key\nmail.a.example a.pem a.key\n.b.example b.pem b.key\n");
    TlsServer server(t.inst);
    server.refresh();
    REQUIRE(server.available());
    CHECK(handshake(server, "MAIL.A.example").cn == "mail.a.example");
    CHECK(handshake(server, "x.b.example").cn == "wild.b.example");
    CHECK(handshake(server, "b.example").cn == "default.example");
    CHECK(handshake(server, "other.example").cn == "default.example");
    CHECK(handshake(server, nullptr).cn == "default.example");

    // a new default certificate is used from the next refresh on
    make_cert(t.control("tlscert.new"), t.control("tlskey.new"), "renewed.example");
    REQUIRE(::rename(t.control("tlskey.new").c_str(), t.control("tlskey").c_str()) == 0);
    REQUIRE(::rename(t.control("tlscert.new").c_str(), t.control("tlscert").c_str()) == 0);
    CHECK(server.refresh());
    CHECK(handshake(server, nullptr).cn == "renewed.example");
    CHECK(handshake(server, "mail.a.example").cn == "mail.a.example");
    CHECK_FALSE(server.refresh());
}

TEST_CASE("TlsServer: a service's own files come first, each on its own", "[tls]") {
    TlsInstance t;
    make_cert(t.control("tlscert"), t.control("tlskey"), "common.example");
    TlsServer pop3(t.inst, "pop3"), smtp(t.inst);
    pop3.refresh();
    REQUIRE(pop3.available());
    CHECK(handshake(pop3, nullptr).cn == "common.example");   // nothing of its own: the common files
    // its own copy of the key (another owner, in a system instance), the common chain
    write_file_atomic(t.control("pop3tlskey"), *read_file(t.control("tlskey")));
    write_file_atomic(t.control("tlskey"), "not a key\n");
    CHECK(pop3.refresh());
    CHECK(pop3.available());
    CHECK(handshake(pop3, nullptr).cn == "common.example");
    smtp.refresh();
    CHECK_FALSE(smtp.available());   // the common key is what smtpd reads
    // and a whole certificate of its own
    make_cert(t.control("pop3tlscert"), t.control("pop3tlskey"), "pop.example");
    CHECK(pop3.refresh());
    CHECK(handshake(pop3, nullptr).cn == "pop.example");
}

TEST_CASE("TlsServer: a bad or missing key turns TLS off and says why", "[tls]") {
    TlsInstance t;
    make_cert(t.control("tlscert"), t.control("k1"), "a.example");
    make_cert(t.control("other"), t.control("tlskey"), "b.example");   // a key of another certificate
    TlsServer server(t.inst);
    server.refresh();
    CHECK_FALSE(server.available());
    CHECK(server.error().find("does not belong") != std::string::npos);
    write_file_atomic(t.control("tlskey"), "garbage\n");
    CHECK(server.refresh());
    CHECK_FALSE(server.available());
    CHECK(server.error().find("private key") != std::string::npos);
    REQUIRE(::unlink(t.control("tlskey").c_str()) == 0);   // no tlskey, and tlscert holds none
    server.refresh();
    CHECK_FALSE(server.available());
    CHECK_FALSE(server.error().empty());
    write_file_atomic(t.control("tlssni"), "onlyaname\n");
    write_file_atomic(t.control("tlskey"), *read_file(t.control("k1")));
    server.refresh();
    CHECK_FALSE(server.available());
    CHECK(server.error().find("tlssni") != std::string::npos);
    CHECK(::unlink(t.control("tlssni").c_str()) == 0);
    server.refresh();
    CHECK(server.available());
}

TEST_CASE("TlsStream: a client that sends no ClientHello, or garbage, fails the handshake", "[tls]") {
    TlsInstance t;
    make_cert(t.control("tlscert"), t.control("tlskey"), "a.example");
    TlsServer server(t.inst);
    server.refresh();
    REQUIRE(server.available());
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    Fd s(sv[0]), c(sv[1]);
    {
        TlsStream tls(server.accept_on(s.get(), s.get()), s.get(), s.get());
        CHECK_FALSE(tls.handshake(200));
        CHECK(tls.error() == "handshake timed out");
    }
    write_all(c.get(), "EHLO me\r\nMAIL FROM:<a@b>\r\n");
    TlsStream tls(server.accept_on(s.get(), s.get()), s.get(), s.get());
    CHECK_FALSE(tls.handshake(2000));
    CHECK(tls.error().find("handshake") != std::string::npos);
    CHECK(tls.error() != "handshake");   // OpenSSL's reason, not just where
}

TEST_CASE("TlsStream: a client that leaves during the handshake is said to have left", "[tls]") {
    TlsInstance t;
    make_cert(t.control("tlscert"), t.control("tlskey"), "a.example");
    TlsServer server(t.inst);
    server.refresh();
    for (std::string sent : {std::string(), std::string("\x16\x03\x01\x00\xc0\x01", 6)}) {   // nothing; half a ClientHello
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        Fd s(sv[0]), c(sv[1]);
        if (!sent.empty()) write_all(c.get(), sent);
        c.reset();
        TlsStream tls(server.accept_on(s.get(), s.get()), s.get(), s.get());
        CHECK_FALSE(tls.handshake(2000));
        CHECK(tls.error() == "the client closed the connection during the handshake");
    }
}

namespace {

// A handshake that offers session (may be null) and gives back the session
// the client has afterwards, and whether the server resumed the offered one.
struct Resumption {
    bool ok = false, reused = false;
    SSL_SESSION* session = nullptr;   // the caller frees it
};

Resumption resume(const TlsServer& server, SSL_SESSION* offer, int version) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    Fd s(sv[0]), c(sv[1]);
    Resumption out;
    std::thread client([&] {
        SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
        SSL_CTX_set_min_proto_version(ctx.get(), version);
        SSL_CTX_set_max_proto_version(ctx.get(), version);
        SslPtr ssl(SSL_new(ctx.get()));
        SSL_set_fd(ssl.get(), c.get());
        if (offer) SSL_set_session(ssl.get(), offer);
        if (SSL_connect(ssl.get()) == 1) {
            SSL_write(ssl.get(), "ping", 4);
            char b[4];
            if (SSL_read(ssl.get(), b, 4) == 4) {   // TLS 1.3: the ticket came before the data
                out.ok = true;
                out.reused = SSL_session_reused(ssl.get()) == 1;
                out.session = SSL_get1_session(ssl.get());
            }
            SSL_shutdown(ssl.get());   // else OpenSSL marks the session as not to be resumed
        }
        ::shutdown(c.get(), SHUT_WR);
    });
    serve_ping(server, s.get());
    client.join();
    return out;
}

}  // namespace

TEST_CASE("TlsServer: tickets from tls/SERVICE-tickets resume on any process of the service", "[tls]") {
    for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
        INFO(version);
        TlsInstance t;
        make_cert(t.control("tlscert"), t.control("tlskey"), "mx.example");
        REQUIRE(::mkdir((t.dir / "tls").c_str(), 0700) == 0);
        const std::string keys = t.dir / "tls/smtpd-tickets";
        rotate_ticket_keys(keys, ::geteuid(), ::getegid());
        struct stat st;
        REQUIRE(::stat(keys.c_str(), &st) == 0);
        CHECK(st.st_size == static_cast<off_t>(2 * sizeof(TicketKey)));
        CHECK((st.st_mode & 0777) == 0640);

        TlsServer a(t.inst, "", "smtpd"), b(t.inst, "", "smtpd"), alone(t.inst);   // two processes, and one without the file
        a.refresh();
        b.refresh();
        alone.refresh();
        Resumption first = resume(a, nullptr, version);
        REQUIRE(first.ok);
        CHECK_FALSE(first.reused);
        CHECK(SSL_SESSION_has_ticket(first.session) == 1);
        Resumption same = resume(a, first.session, version);
        CHECK(same.reused);
        SSL_SESSION_free(same.session);

        Resumption again = resume(b, first.session, version);   // another process of the service
        CHECK(again.ok);
        CHECK(again.reused);
        Resumption own = resume(alone, first.session, version);   // keys of its own: a full handshake
        CHECK(own.ok);
        CHECK_FALSE(own.reused);

        // an hour later: the older key still opens the ticket; two hours later it does not
        rotate_ticket_keys(keys, ::geteuid(), ::getegid());
        CHECK(b.refresh());
        Resumption later = resume(b, first.session, version);
        CHECK(later.reused);
        rotate_ticket_keys(keys, ::geteuid(), ::getegid());
        CHECK(b.refresh());
        Resumption expired = resume(b, first.session, version);
        CHECK(expired.ok);
        CHECK_FALSE(expired.reused);
        for (SSL_SESSION* sess : {first.session, again.session, own.session, later.session, expired.session})
            SSL_SESSION_free(sess);
    }
}
