// A scripted SMTP server for the client's unit tests: the replies to give,
// in order (or a lost connection), and everything the client sent.
#pragma once
#include <deque>
#include <string>

#include "smtp_client.hpp"
#include "smtp_reply.hpp"

namespace yubin::test {

class ScriptedServer : public SmtpTransport {
public:
    // Each entry is a complete reply ("250-a\r\n250 b\r\n"), or "LOST" for a
    // lost connection at that read.
    explicit ScriptedServer(std::deque<std::string> script) : script_(std::move(script)) {}

    void send(std::string_view data) override { sent += data; }
    SmtpReply read_reply() override {
        ++reads;
        if (script_.empty() || script_.front() == "LOST") {
            if (!script_.empty()) script_.pop_front();
            throw TransportError("the server closed the connection");
        }
        ReplyReader r;
        r.feed(script_.front());
        script_.pop_front();
        auto reply = r.next();
        if (!reply) throw TransportError("incomplete scripted reply");
        return *reply;
    }
    void set_timeout(int seconds) override { timeout = seconds; }
    bool finished() const { return script_.empty(); }

    std::string sent;
    int reads = 0;
    int timeout = 0;

private:
    std::deque<std::string> script_;
};

class StringMessage : public MessageData {
public:
    explicit StringMessage(std::string text) : text_(std::move(text)) {}
    size_t size() const override {
        size_t n = text_.size();
        for (char c : text_) n += c == '\n';
        return n;
    }
    bool eight_bit() const override {
        for (char c : text_)
            if (static_cast<unsigned char>(c) >= 0x80) return true;
        return false;
    }
    void rewind() override { pos_ = 0; }
    std::string_view read() override {
        size_t n = std::min<size_t>(7, text_.size() - pos_);   // small pieces on purpose
        std::string_view out(text_.data() + pos_, n);
        pos_ += n;
        return out;
    }

private:
    std::string text_;
    size_t pos_ = 0;
};

}  // namespace yubin::test
