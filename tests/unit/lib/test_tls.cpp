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
    SslPtr ssl = server.accept_on(s.get(), s.get());
    REQUIRE(ssl);
    TlsStream tls(std::move(ssl), s.get(), s.get());
    if (tls.handshake(5000)) {
        char buf[16];
        size_t n = 0;
        for (int i = 0; i < 100; ++i) {
            TlsStream::Io r = tls.read(buf, sizeof buf, n);
            if (r != TlsStream::Io::again) break;
            ::usleep(10000);
        }
        CHECK(std::string(buf, n) == "ping");
        CHECK(tls.write_all("pong", 5000));
    }
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
